"""Execution: one jitted, vmapped, sharded program per bucket, run chunk after chunk.

`make_chunk_fn` wraps an experiment's pure `run(inputs, shared)` into the chunk program: the
per-run inputs laid out (devices, C / devices) with the device axis sharded, groups of V vmapped
runs mapped one after another on each device, and what the runs share (an image set)
replicated. `run_chunks` feeds it the chunks still to do and yields NumPy results.

Shape letters: C runs in a chunk, V runs vectorized together.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from noisyjax.sweep import faults
from noisyjax.sweep.plan import Bucket, Plan, cut
from noisyjax.sweep.spec import RunTable

Chunk = tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]


@dataclasses.dataclass
class Timing:
    compile_s: float = 0.0
    run_s: float = 0.0
    xla_bytes: list[int] = dataclasses.field(default_factory=list)  # per compiled program


def xla_memory(compiled) -> dict[str, int] | None:
    """XLA's own count of a compiled program's device memory, by part (arguments, outputs,
    temporaries), or None where the backend does not report it."""
    try:
        stats = compiled.memory_analysis()
    except Exception:  # noqa: BLE001  not every backend implements it
        return None
    if stats is None:
        return None
    parts = {"argument_bytes": "argument", "output_bytes": "output", "temp_bytes": "temp"}
    return {k: int(getattr(stats, f"{f}_size_in_bytes", 0) or 0) for k, f in parts.items()}


def xla_bytes(compiled) -> int | None:
    """XLA's own count of a compiled program's device memory, in all."""
    parts = xla_memory(compiled)
    return None if parts is None else sum(parts.values())


def run_sharding(devices: list[jax.Device]) -> NamedSharding:
    """The chunk layout's sharding: leading (device) axis split over `devices`."""
    return NamedSharding(Mesh(np.asarray(devices), ("devices",)), PartitionSpec("devices"))


def make_chunk_fn(plan_: Plan, bucket: Bucket, devices: list[jax.Device]) -> Callable:
    """The compiled chunk program of a bucket: (inputs, shared) -> (metrics, snapshots)."""
    run = plan_.sweep.experiment.make_run(bucket.cfg)

    def per_device(inputs, shared):
        return jax.lax.map(lambda a: run(a, shared), inputs, batch_size=bucket.vector_runs)

    sharding = run_sharding(devices)
    replicated = NamedSharding(sharding.mesh, PartitionSpec())
    # Each device runs its own rows (shard_map), so the runs of a device are the only axis the
    # run function is vmapped over: a CPU draw loops over them (`noisyjax.synthetic.train.
    # sample_run`) without looping over the devices.
    return jax.jit(
        jax.shard_map(
            jax.vmap(per_device, in_axes=(0, None)),  # over this device's one row
            mesh=sharding.mesh,
            in_specs=(sharding.spec, replicated.spec),
            out_specs=sharding.spec,
            check_vma=False,
        ),
        in_shardings=(sharding, replicated),
        out_shardings=sharding,
    )


def chunk_inputs(table: RunTable, runs_C: np.ndarray, plan_: Plan, bucket: Bucket, size: int):
    """A chunk's per-run inputs, padded to `size` by repeating its first run."""
    padded = np.concatenate([runs_C, np.full(size - len(runs_C), runs_C[0])])
    return plan_.sweep.experiment.inputs(table, padded, bucket.cfg)


def run_chunks(
    plan_: Plan,
    todo: np.ndarray,
    *,
    devices: list[jax.Device] | None = None,
    timing: Timing | None = None,
    programs: dict | None = None,
) -> Iterator[Chunk]:
    """Yield (run indices, metrics, snapshots), as NumPy arrays, for the chunks of `todo`.

    Chunks are cut from the runs still to do, so a resumed sweep compiles the same programs.
    `programs`, a dict the caller keeps, holds the compiled programs for the next call: a
    bucket with the same config, widths, devices and numerics runs without compiling again
    (the rounds of a refinement, `noisyjax.sweep.refine`).
    """
    devices = jax.local_devices() if devices is None else devices
    timing = Timing() if timing is None else timing
    exp = plan_.sweep.experiment
    n_max = max(exp.samples(b.cfg) for b in plan_.buckets)  # one sample axis for all buckets
    sharding = run_sharding(devices)
    replicated = NamedSharding(sharding.mesh, PartitionSpec())
    for bucket in plan_.buckets:
        runs = bucket.runs[np.isin(bucket.runs, todo)]
        if not len(runs):
            continue
        fn = make_chunk_fn(plan_, bucket, devices)
        shared = jax.device_put(exp.shared(bucket.cfg), replicated)

        def placed(runs_C, size, bucket=bucket):
            args = chunk_inputs(plan_.table, runs_C, plan_, bucket, size)
            args = jax.tree.map(lambda a: a.reshape(len(devices), -1), args)
            # Placed explicitly: with several processes JAX refuses to shard host arrays itself.
            return jax.device_put(args, sharding)

        key = program_key(plan_, bucket, devices)
        if programs is not None and key in programs:
            compiled, size = programs[key]
        else:
            compiled, size = fitted_program(
                fn, placed, shared, runs, plan_, bucket, devices, timing
            )
            if programs is not None:
                programs[key] = compiled, size
        for runs_C in cut(runs, size):
            args = placed(runs_C, size)
            t0 = time.perf_counter()
            out = jax.device_get(compiled(args, shared))
            timing.run_s += time.perf_counter() - t0
            faults.reach("chunk")
            count = len(runs_C)
            metrics, snapshots = jax.tree.map(
                lambda v, c=count: np.asarray(v).reshape((-1,) + v.shape[2:])[:c], out
            )
            yield runs_C, pad_samples(metrics, n_max), snapshots


def program_key(plan_: Plan, bucket: Bucket, devices: list[jax.Device]) -> tuple:
    """What decides a bucket's compiled chunk program and its fitted chunk size."""
    return (
        plan_.sweep.experiment.name,
        bucket.cfg,
        bucket.vector_runs,
        bucket.chunk_runs,
        tuple(devices),
        plan_.max_memory,
        str(jax.config.jax_default_matmul_precision),
        bool(jax.config.jax_enable_x64),
    )


def fitted_program(fn, placed, shared, runs, plan_: Plan, bucket: Bucket, devices, timing: Timing):
    """The bucket's compiled chunk program and its chunk size: the planned size, halved (in
    whole groups of devices x V runs) while XLA's own count of the compiled program exceeds the
    memory budget. A smaller chunk only runs fewer groups one after another, so results do not
    change. With several processes every process must cut the same chunks: no split there, the
    program is refused instead (`check_fits`)."""
    size, unit = bucket.chunk_runs, len(devices) * bucket.vector_runs
    while True:
        faults.reach("compile")
        t0 = time.perf_counter()
        compiled = fn.lower(placed(runs[:size], size), shared).compile()
        timing.compile_s += time.perf_counter() - t0
        need = xla_bytes(compiled)
        fits = need is None or need * len(devices) <= plan_.max_memory
        if fits or size <= unit or jax.process_count() > 1:
            break
        smaller = max(unit, size // 2 // unit * unit)
        print(
            f"note: a chunk of {size} runs needs {need * len(devices):,} bytes by XLA's count, "
            f"over the budget of {plan_.max_memory:,}: split into chunks of {smaller}",
            file=sys.stderr,
        )
        size = smaller
    check_fits(need, plan_, bucket, len(devices), timing)
    return compiled, size


def check_fits(need: int | None, plan_: Plan, bucket: Bucket, n_dev: int, timing: Timing) -> None:
    """Refuse a compiled chunk program that XLA says needs more than the budget (before it
    runs), and record XLA's count for config.json."""
    if need is None:
        return
    timing.xla_bytes.append(need)
    if need * n_dev > plan_.max_memory:
        from noisyjax.errors import fail
        from noisyjax.sweep.plan import gib

        fail(
            "max_memory",
            gib(plan_.max_memory),
            f"at least XLA's own count for the compiled chunk, {gib(need * n_dev)} (estimated "
            f"{gib(bucket.bytes_per_run * bucket.vector_runs * n_dev)} for the runs in flight): "
            "raise --max-memory, or lower --chunk-runs or --vector-runs",
        )


def chunk_template(plan_: Plan, bucket: Bucket) -> tuple[dict, dict]:
    """Empty (0-run) metrics and snapshots of a bucket's chunk, traced but never run."""
    exp = plan_.sweep.experiment
    args = chunk_inputs(plan_.table, bucket.runs[:1], plan_, bucket, bucket.vector_runs)
    args = jax.tree.map(lambda a: a.reshape(1, -1), args)
    fn = make_chunk_fn(plan_, bucket, jax.local_devices()[:1])
    shapes = jax.eval_shape(fn, args, exp.shared(bucket.cfg))
    n_max = max(exp.samples(b.cfg) for b in plan_.buckets)
    metrics, snapshots = jax.tree.map(lambda v: np.zeros((0,) + v.shape[2:], v.dtype), shapes)
    return pad_samples(metrics, n_max), snapshots


def pad_samples(metrics: dict[str, np.ndarray], n_max: int) -> dict[str, np.ndarray]:
    """Per-sample outputs (`sample_*`, last axis n) padded to n_max: NaN, or False."""
    out = dict(metrics)
    for name, v in metrics.items():
        if name.startswith("sample_") and v.shape[-1] < n_max:
            fill = False if v.dtype == bool else np.nan
            width = [(0, 0)] * (v.ndim - 1) + [(0, n_max - v.shape[-1])]
            out[name] = np.pad(v, width, constant_values=fill)
    return out
