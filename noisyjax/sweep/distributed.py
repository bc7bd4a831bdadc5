"""Devices and multi-process execution on JAX's own runtime (`jax.distributed`).

Each process runs its share of the chunks on its local devices; after every round of chunks the
results are gathered with `multihost_utils.process_allgather` so that process 0 can write them.
With one process every function here reduces to the plain single-process path. On a CPU host
each core can be its own JAX device (`use_cpu_cores`), so a sweep spreads its runs over the
cores the way it spreads them over accelerators.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import jax
import numpy as np

from noisyjax.sweep.execute import chunk_template
from noisyjax.sweep.plan import cut


def use_cpu_cores(count: int | None = None) -> bool:
    """Expose `count` CPU devices (default: one per core this process may use) to JAX.

    A sweep lays its runs out over devices, so on a CPU this runs independent groups of runs on
    every core at once instead of splitting each small operation between threads (the engines'
    steps are many small operations; docs/performance.md measures the gain). Results do not
    depend on the device count. It must run before JAX starts its backends: afterwards, or when
    the user already chose a count (`JAX_NUM_CPU_DEVICES`, `jax_num_cpu_devices`), it changes
    nothing and returns False. Accelerators are unaffected.
    """
    if count is None:
        count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    chosen = "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
    if not count or count < 2 or chosen or jax.config.jax_num_cpu_devices != -1:
        return False
    try:
        jax.config.update("jax_num_cpu_devices", int(count))
    except RuntimeError:  # the backends are already up (JAX was used earlier in this process)
        return False
    return True


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """`jax.distributed.initialize`; with no arguments JAX detects TPU pods and known clusters."""
    jax.distributed.initialize(
        coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id
    )


def shutdown() -> None:
    if jax.process_count() > 1:
        jax.distributed.shutdown()


def broadcast(x: np.ndarray) -> np.ndarray:
    """Process 0's value of `x` on every process."""
    if jax.process_count() == 1:
        return x
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.broadcast_one_to_all(x))


def share(plan, todo: np.ndarray, run: Callable, timing) -> Iterator[tuple]:
    """Yield every chunk's (runs, metrics, snapshots); each process computes its own share.

    With P processes, process p takes every P-th chunk of each bucket (cut the same way on every
    process). Chunks are exchanged in rounds: in each round every process contributes its next
    chunk, or a placeholder with run index -1 when it has none left, padded to the bucket's chunk
    size, and `process_allgather` hands all of them to every process.
    """
    count, index = jax.process_count(), jax.process_index()
    if count == 1:
        yield from run(plan, todo, timing=timing)
        return
    from jax.experimental import multihost_utils

    # Buckets differ in shapes: gather per bucket, so every payload of a round has one shape.
    for bucket in plan.buckets:
        runs = bucket.runs[np.isin(bucket.runs, todo)]
        chunks = cut(runs, bucket.chunk_runs)
        mine = chunks[index::count]
        results = run(plan, np.concatenate(mine) if mine else np.zeros(0, np.int64), timing=timing)
        template = None
        for _ in range(-(-len(chunks) // count)):
            item = next(results, None)
            if item is None:
                template = template or chunk_template(plan, bucket)
                item = (np.zeros(0, np.int64),) + template
            runs_C, metrics, snapshots = item
            if template is None:
                template = jax.tree.map(
                    lambda v: np.zeros((0,) + v.shape[1:], v.dtype), (metrics, snapshots)
                )
            width = bucket.chunk_runs
            payload = {
                "runs": _pad(runs_C.astype(np.int64), width, -1),
                "data": jax.tree.map(lambda v, w=width: _pad(v, w, 0), (metrics, snapshots)),
            }
            gathered = multihost_utils.process_allgather(payload)
            for p in range(count):
                keep = gathered["runs"][p] >= 0
                if keep.any():
                    metrics_p, snapshots_p = jax.tree.map(
                        lambda v, p=p, k=keep: v[p][k], gathered["data"]
                    )
                    yield gathered["runs"][p][keep], metrics_p, snapshots_p


def _pad(x: np.ndarray, width: int, fill) -> np.ndarray:
    pad = [(0, width - x.shape[0])] + [(0, 0)] * (x.ndim - 1)
    return np.pad(np.asarray(x), pad, constant_values=fill)
