"""Sweep execution: static buckets, memory-budgeted chunks, one jitted vmapped program per bucket.

Runs are grouped by m, compiled once per value (bucketing), while n and d are padded to the
largest value in the bucket with masks (the wishart engine draws nothing of size d: there d is
only a number); engine "auto" is resolved per bucket; a padded run equals the unpadded one up to
the rounding of longer sums (`noisyjax.Sizes`; 1e-10 in float64).

Inside a compiled chunk the runs are laid out as (devices, groups, V): the device axis is
sharded, groups run one after another (`lax.map`) and the V runs of a group are vmapped. The
vector width V is the only batch size XLA ever sees, so a run's floating-point result does not
depend on the chunk size, the device count or its neighbours (XLA may round a vmapped
contraction differently for different batch sizes). V is recorded in config.json.

Shape letters: C runs in a chunk, V runs vectorized together.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from noisyjax import faults
from noisyjax.config import HPARAM_FIELDS, TRANSITION_NAMES, Config, ConfigError, HParams, Sizes
from noisyjax.grid import RunTable, Sweep, expand
from noisyjax.metrics import metric_names
from noisyjax.stages import PROBES, Snapshot, snapshot_of
from noisyjax.train import make_train

SAFETY = 2.0  # headroom over the counted tensors in `bytes_per_run`
# Default vector width: enough to fill SIMD units on a CPU, wide batches on accelerators.
VECTOR_RUNS = {"cpu": 8, "default": 256}


@dataclasses.dataclass(frozen=True)
class Bucket:
    """Runs compiled together: a padded static config and the runs' indices in the table."""

    cfg: Config
    runs: np.ndarray  # (R_b,) int64
    chunk_runs: int  # a multiple of devices * vector_runs
    vector_runs: int
    bytes_per_run: int

    @property
    def chunks(self) -> list[np.ndarray]:
        return cut(self.runs, self.chunk_runs)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a sweep will run: its table, buckets and chunking, decided before compiling."""

    sweep: Sweep
    table: RunTable
    buckets: tuple[Bucket, ...]
    n_devices: int
    max_memory: int

    @property
    def n_chunks(self) -> int:
        return sum(len(b.chunks) for b in self.buckets)

    def summary(self) -> dict:
        return {
            "runs": self.table.n_runs,
            "chunks": self.n_chunks,
            "devices": self.n_devices,
            "max_memory_bytes": self.max_memory,
            "buckets": [
                {
                    "n": b.cfg.n,
                    "d": b.cfg.d,
                    "m": b.cfg.m,
                    "engine": b.cfg.engine,
                    "runs": len(b.runs),
                    "chunk_runs": b.chunk_runs,
                    "vector_runs": b.vector_runs,
                    "chunks": len(b.chunks),
                    "bytes_per_run": b.bytes_per_run,
                    "bytes_per_chunk": b.bytes_per_run * b.vector_runs * self.n_devices
                    + output_bytes(b.cfg) * b.chunk_runs,
                    "snapshot_bytes": snapshot_bytes(b.cfg) * len(b.runs),
                }
                for b in self.buckets
            ],
            "snapshot_bytes": sum(snapshot_bytes(b.cfg) * len(b.runs) for b in self.buckets),
        }


def cut(runs: np.ndarray, size: int) -> list[np.ndarray]:
    """Consecutive chunks of `size` runs (the last one may be shorter)."""
    return [runs[i : i + size] for i in range(0, len(runs), size)]


def bytes_per_run(cfg: Config) -> int:
    """Estimated peak device memory of one run: data, weights, optimizer, activations, metrics."""
    n, m, nt = cfg.n, cfg.m, cfg.n_test + cfg.n_val
    engine = cfg.step_engine
    d_data = cfg.reduced_d if engine == "wishart" else cfg.d  # where samples are drawn
    d_step = cfg.d if engine == "dense" else n + 1  # where filters move
    floats = (
        3 * (n + nt) * 2 * d_data  # train and test patches, plus sampling temporaries
        + (2 * m * cfg.d if cfg.init == "torch" else 0)  # filters drawn in R^d
        + (0 if engine == "dense" else 2 * (n + nt) * (2 * m + n + 1))  # projections
        + (10 if cfg.optimizer == "adam" else 6) * 2 * m * d_step  # w, grads, updates, moments
        + 8 * (n + nt) * 2 * 2 * m  # pre-activations and their derivatives
        + 6 * 2 * m * n
        + 3 * n * n  # gamma/rho bookkeeping, noise Gram matrix
        + (0 if cfg.exact_recursion else (n + 1) * (cfg.d + 2 * (n + 1)))  # projection basis
        + cfg.n_logs * (len(metric_names(cfg)) + 4 + (n if cfg.log_samples else 0))
        + 2 * len(TRANSITION_NAMES) * (len(PROBES) + n)  # marker probes, in and out
        + 2 * (len(cfg.snapshot_stages) + 1) * 2 * m * (d_step + 2 * n)  # snapshots, in and out
    )
    return int(SAFETY * floats * jnp.dtype(cfg.dtype).itemsize)


def output_bytes(cfg: Config) -> int:
    """Bytes of one run's outputs held for a whole chunk: trajectories, scalars, snapshots."""
    per_log = len(metric_names(cfg)) + 1 + (cfg.n if cfg.log_samples else 0)
    scalars = len(TRANSITION_NAMES) * (len(PROBES) + 1) + 16  # markers, probes, summaries
    trajectories = cfg.n_logs * per_log + scalars + cfg.n
    return trajectories * jnp.dtype(cfg.dtype).itemsize + snapshot_bytes(cfg)


def snapshot_bytes(cfg: Config) -> int:
    """Bytes one run's stage snapshots take on disk (before compression)."""
    d_step = cfg.d if cfg.step_engine == "dense" else cfg.n + 1
    per_stage = 2 * cfg.m * (d_step + 2 + 2 * cfg.n) + 1
    return len(cfg.snapshot_stages) * per_stage * jnp.dtype(cfg.dtype).itemsize


def resolve_engine(cfg: Config, d_min: int) -> Config:
    """The bucket's config with engine "auto" replaced by its choice; wishart needs every run's
    d >= 2 m + 2, so a bucket holding a smaller d stays dense."""
    if cfg.engine != "auto":
        return cfg
    chosen = cfg.step_engine
    if chosen == "wishart" and d_min < 2 * cfg.m + 2:
        chosen = "dense"
    return cfg.replace(engine=chosen)


def default_max_memory(devices: list[jax.Device]) -> int:
    """Half the accelerator memory, or a quarter of host RAM (at most 8 GiB) on CPU."""
    stats = [getattr(dev, "memory_stats", lambda: None)() or {} for dev in devices]
    limits = [s.get("bytes_limit") for s in stats]
    if all(limits):
        return int(0.5 * sum(limits))
    try:
        host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        host = 8 << 30
    return int(min(host // 4, 8 << 30))


def plan(
    sweep: Sweep,
    *,
    devices: list[jax.Device] | None = None,
    max_memory: int | None = None,
    chunk_runs: int | None = None,
    vector_runs: int | None = None,
    min_chunks: int = 4,
) -> Plan:
    """Expand the grid and decide buckets, vector width and chunk sizes (nothing is compiled).

    A bucket holds the runs of one m; n and d are padded to the bucket's largest values. The
    vector width V is `vector_runs`, or the backend default lowered until V runs fit
    `max_memory` on every device. A chunk is devices x V x groups runs, with as many groups as
    keep at least `min_chunks` chunks per bucket (progress and resume granularity);
    `chunk_runs` overrides it, rounded up to a multiple of devices x V.
    """
    devices = jax.local_devices() if devices is None else devices
    n_dev = len(devices)
    budget = default_max_memory(devices) if max_memory is None else max_memory
    for name, value in (("chunk_runs", chunk_runs), ("vector_runs", vector_runs)):
        if value is not None and (isinstance(value, bool) or value < 1):
            raise ConfigError(f"{name}={value!r} is invalid: allowed an integer >= 1")
    if budget <= 0:
        raise ConfigError(f"max_memory={budget!r} is invalid: allowed a positive size")
    table = expand(sweep)
    default_width = VECTOR_RUNS.get(devices[0].platform, VECTOR_RUNS["default"])
    buckets = []
    for m in np.unique(table.shape["m"]):
        runs = np.flatnonzero(table.shape["m"] == m)
        cfg = sweep.cfg.replace(
            m=int(m), n=int(table.shape["n"][runs].max()), d=int(table.shape["d"][runs].max())
        )
        cfg = resolve_engine(cfg, int(table.shape["d"][runs].min()))
        per_run = bytes_per_run(cfg)
        width = vector_runs or int(max(1, min(default_width, budget // (per_run * n_dev))))
        step = n_dev * width
        wanted = chunk_runs or math.ceil(len(runs) / min_chunks)
        if chunk_runs is None:  # a chunk's outputs (metrics, snapshots) get half the budget
            wanted = min(wanted, max(1, budget // (2 * output_bytes(cfg))))
        size = max(1, math.ceil(wanted / step)) * step
        buckets.append(Bucket(cfg, runs, int(size), int(width), per_run))
    return Plan(sweep, table, tuple(buckets), n_dev, int(budget))


def chunk_inputs(
    table: RunTable, runs_C: np.ndarray, cfg: Config, size: int
) -> tuple[np.ndarray, HParams, Sizes]:
    """Seeds, hyperparameters and active sizes of a chunk, padded to `size` by repeating a run."""
    padded = np.concatenate([runs_C, np.full(size - len(runs_C), runs_C[0])])
    dtype = np.dtype(cfg.dtype)
    hp = HParams(**{f: table.hp[f][padded].astype(dtype) for f in HPARAM_FIELDS})
    sizes = Sizes(
        n=table.shape["n"][padded].astype(np.int32), d=table.shape["d"][padded].astype(np.int32)
    )
    return table.seed[padded], hp, sizes


def run_sharding(devices: list[jax.Device]) -> NamedSharding:
    """The chunk layout's sharding: leading (device) axis split over `devices`."""
    return NamedSharding(Mesh(np.asarray(devices), ("devices",)), PartitionSpec("devices"))


def make_chunk_fn(cfg: Config, devices: list[jax.Device], vector_runs: int) -> Callable:
    """The compiled chunk: inputs (devices, C / devices), device axis sharded, groups of
    `vector_runs` vmapped runs mapped one after another on each device."""
    train = make_train(cfg)

    def one(
        seed: jax.Array, hp: HParams, sizes: Sizes
    ) -> tuple[dict[str, jax.Array], dict[str, Snapshot]]:
        state, metrics = train(jax.random.key(seed), hp, sizes)
        snapshots = {name: snap for name, snap in state.stages.snapshots.items()}
        if "final" in cfg.snapshot_stages:
            snapshots["final"] = snapshot_of(state)
        return metrics, snapshots

    def per_device(seed, hp, sizes):
        return jax.lax.map(lambda a: one(*a), (seed, hp, sizes), batch_size=vector_runs)

    sharding = run_sharding(devices)
    return jax.jit(jax.vmap(per_device), in_shardings=sharding, out_shardings=sharding)


@dataclasses.dataclass
class Timing:
    compile_s: float = 0.0
    run_s: float = 0.0


Chunk = tuple[np.ndarray, dict[str, np.ndarray], dict[str, Snapshot]]


def run_chunks(
    plan_: Plan,
    todo: np.ndarray,
    *,
    devices: list[jax.Device] | None = None,
    timing: Timing | None = None,
) -> Iterator[Chunk]:
    """Yield (run indices, metrics, snapshots), as NumPy arrays, for the chunks of `todo`.

    Chunks are cut from the runs still to do, so a resumed sweep compiles the same programs.
    """
    devices = jax.local_devices() if devices is None else devices
    timing = Timing() if timing is None else timing
    n_max = max(b.cfg.n for b in plan_.buckets)  # per-sample outputs share one sample axis
    for bucket in plan_.buckets:
        runs = bucket.runs[np.isin(bucket.runs, todo)]
        if not len(runs):
            continue
        fn = make_chunk_fn(bucket.cfg, devices, bucket.vector_runs)
        sharding = run_sharding(devices)
        compiled = None
        for runs_C in cut(runs, bucket.chunk_runs):
            args = jax.tree.map(
                lambda a: a.reshape(len(devices), -1),
                chunk_inputs(plan_.table, runs_C, bucket.cfg, bucket.chunk_runs),
            )
            # Placed explicitly: with several processes JAX refuses to shard host arrays itself.
            args = jax.device_put(args, sharding)
            if compiled is None:
                faults.reach("compile")
                t0 = time.perf_counter()
                compiled = fn.lower(*args).compile()
                timing.compile_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            out = jax.device_get(compiled(*args))
            timing.run_s += time.perf_counter() - t0
            faults.reach("chunk")
            count = len(runs_C)
            metrics, snapshots = jax.tree.map(
                lambda v, c=count: np.asarray(v).reshape((-1,) + v.shape[2:])[:c], out
            )
            yield runs_C, pad_samples(metrics, n_max), snapshots


def pad_samples(metrics: dict[str, np.ndarray], n_max: int) -> dict[str, np.ndarray]:
    """Per-sample outputs (`sample_*`, last axis n) padded to n_max: NaN, or False."""
    out = dict(metrics)
    for name, v in metrics.items():
        if name.startswith("sample_") and v.shape[-1] < n_max:
            fill = False if v.dtype == bool else np.nan
            width = [(0, 0)] * (v.ndim - 1) + [(0, n_max - v.shape[-1])]
            out[name] = np.pad(v, width, constant_values=fill)
    return out
