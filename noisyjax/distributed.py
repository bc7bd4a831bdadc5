"""Multi-process execution on JAX's own runtime (`jax.distributed`).

Each process runs its share of the chunks on its local devices; after every round of chunks the
results are gathered with `multihost_utils.process_allgather` so that process 0 can write them.
With one process every function here reduces to the plain single-process path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import jax
import numpy as np


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> None:
    """`jax.distributed.initialize`; with no arguments JAX detects TPU pods and known clusters."""
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)


def shutdown() -> None:
    if jax.process_count() > 1:
        jax.distributed.shutdown()


def broadcast(x: np.ndarray) -> np.ndarray:
    """Process 0's value of `x` on every process."""
    if jax.process_count() == 1:
        return x
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.broadcast_one_to_all(x))


def share(plan, todo: np.ndarray, run: Callable, timing) -> Iterator[tuple[np.ndarray, dict]]:
    """Yield every chunk's (runs, metrics); each process computes its own share of the chunks.

    With P processes, process p takes every P-th chunk of each bucket (cut the same way on every
    process). Chunks are exchanged in rounds: in each round every process contributes its next
    chunk, or a placeholder with run index -1 when it has none left, padded to the largest chunk
    size, and `process_allgather` hands all of them to every process.
    """
    count, index = jax.process_count(), jax.process_index()
    if count == 1:
        yield from run(plan, todo, timing=timing)
        return
    from jax.experimental import multihost_utils

    mine, rounds = [], 0
    for bucket in plan.buckets:
        runs = bucket.runs[np.isin(bucket.runs, todo)]
        chunks = [runs[i : i + bucket.chunk_runs] for i in range(0, len(runs), bucket.chunk_runs)]
        mine.extend(chunks[index::count])
        rounds += -(-len(chunks) // count)
    width = max(b.chunk_runs for b in plan.buckets)
    mine_todo = np.concatenate(mine) if mine else np.zeros(0, np.int64)
    results = run(plan, mine_todo, timing=timing)
    template = None
    for _ in range(rounds):
        item = next(results, None)
        if item is not None:
            runs_C, metrics = item
            template = template or {k: (v.shape[1:], v.dtype) for k, v in metrics.items()}
            payload = {"runs": _pad(runs_C.astype(np.int64), width, -1),
                       **{k: _pad(v, width, 0) for k, v in metrics.items()}}
        else:
            template = template or plan_template(plan)
            payload = {"runs": np.full(width, -1, np.int64),
                       **{k: np.zeros((width,) + s, t) for k, (s, t) in template.items()}}
        gathered = multihost_utils.process_allgather(payload)
        for p in range(count):
            keep = gathered["runs"][p] >= 0
            if keep.any():
                yield gathered["runs"][p][keep], {k: v[p][keep] for k, v in gathered.items()
                                                  if k != "runs"}


def _pad(x: np.ndarray, width: int, fill) -> np.ndarray:
    pad = [(0, width - x.shape[0])] + [(0, 0)] * (x.ndim - 1)
    return np.pad(x, pad, constant_values=fill)


def plan_template(plan) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shapes and dtypes of one run's metrics, without running anything."""
    from noisyjax.config import Sizes
    from noisyjax.sweep import chunk_inputs
    from noisyjax.train import make_train

    bucket = plan.buckets[0]
    seeds, hp, sizes = chunk_inputs(plan.table, bucket.runs[:1], bucket.cfg, 1)
    one = jax.tree.map(lambda a: a[0], (hp, sizes))
    shapes = jax.eval_shape(lambda s, h, z: make_train(bucket.cfg)(jax.random.key(s), h, z)[1],
                            seeds[0], one[0], Sizes(*jax.tree.leaves(one[1])))
    return {k: (v.shape, np.dtype(v.dtype)) for k, v in shapes.items()}
