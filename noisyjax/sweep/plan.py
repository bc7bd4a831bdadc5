"""Planning: static buckets, a vector width and memory-budgeted chunks, before anything compiles.

The experiment groups its runs into buckets, each one compiled program (the synthetic runs by m,
with n and d padded to the bucket's largest; the real-image runs all together). Inside a chunk
the runs are laid out as (devices, groups, V): the device axis is sharded, groups run one after
another (`lax.map`) and the V runs of a group are vmapped. The vector width V is the only batch
size XLA ever sees, so a run's floating-point result does not depend on the chunk size, the
device count or its neighbours (XLA may round a vmapped contraction differently for different
batch sizes). V is recorded in config.json.

Shape letters: C runs in a chunk, V runs vectorized together.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from typing import Any

import jax
import numpy as np

from noisyjax.errors import check_int, fail
from noisyjax.sweep.spec import RunTable, Sweep, expand

# Default vector width: enough to fill SIMD units on a CPU (wider does not help there); on an
# accelerator the widest power of two up to this cap whose runs fit the memory budget and that
# the bucket's runs fill (`default_width`). Measured on an H200 (benchmarks/device.py,
# docs/performance.md): paper-sized runs reach 91% of their plateau at V = 256, where this rule
# lands within the default budget; Kou-sized runs still gain 10x from V = 256 to 4096.
VECTOR_RUNS = {"cpu": 8, "default": 4096}
MAX_RUNS = 10_000_000  # runs per sweep: the run table and the results live in host memory


@dataclasses.dataclass(frozen=True)
class Bucket:
    """Runs compiled together: a padded static config and the runs' indices in the table."""

    cfg: Any
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
    facts: dict[str, Any] = dataclasses.field(default_factory=dict)  # from `prepare`

    @property
    def n_chunks(self) -> int:
        return sum(len(b.chunks) for b in self.buckets)

    def summary(self) -> dict:
        exp = self.sweep.experiment
        buckets = [
            {
                **exp.describe(b.cfg),
                "runs": len(b.runs),
                "chunk_runs": b.chunk_runs,
                "vector_runs": b.vector_runs,
                "chunks": len(b.chunks),
                "bytes_per_run": b.bytes_per_run,
                "bytes_per_chunk": b.bytes_per_run * b.vector_runs * self.n_devices
                + exp.output_bytes(b.cfg) * b.chunk_runs,
                "snapshot_bytes": exp.snapshot_bytes(b.cfg) * len(b.runs),
            }
            for b in self.buckets
        ]
        return {
            "runs": self.table.n_runs,
            "chunks": self.n_chunks,
            "devices": self.n_devices,
            "max_memory_bytes": self.max_memory,
            **self.facts,
            "buckets": buckets,
            "snapshot_bytes": sum(b["snapshot_bytes"] for b in buckets),
        }


def cut(runs: np.ndarray, size: int) -> list[np.ndarray]:
    """Consecutive chunks of `size` runs (the last one may be shorter)."""
    return [runs[i : i + size] for i in range(0, len(runs), size)]


def default_max_memory(devices: list[jax.Device]) -> int:
    """Half the accelerator memory, or a quarter of host RAM (at most 8 GiB) on CPU."""
    stats = [getattr(dev, "memory_stats", lambda: None)() or {} for dev in devices]
    limits = [s.get("bytes_limit") for s in stats]
    if all(limits):
        return int(0.5 * sum(limits))
    return int(min(host_memory() // 4, 8 << 30))


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

    `max_memory` is for all local devices together. The vector width V is `vector_runs`, or
    the backend default lowered until V runs, and their outputs, fit it on every device. A
    chunk is devices x V x groups runs, with as many groups as keep at least `min_chunks`
    chunks per bucket (progress and resume granularity) and its outputs within half the budget
    and the room the vectorized runs leave; `chunk_runs` overrides it, rounded up to a
    multiple of devices x V. A plan whose estimated peak exceeds the budget, or whose results
    would not fit half the host memory, is refused (`ConfigError`) before anything runs.
    """
    devices = jax.local_devices() if devices is None else devices
    n_dev = len(devices)
    for name, value in (("chunk_runs", chunk_runs), ("vector_runs", vector_runs)):
        if value is not None:
            check_int(name, value)
    chunk_runs = None if chunk_runs is None else int(chunk_runs)
    vector_runs = None if vector_runs is None else int(vector_runs)
    if max_memory is not None:
        check_size("max_memory", max_memory)
    budget = default_max_memory(devices) if max_memory is None else int(max_memory)
    exp = sweep.experiment
    if sweep.n_runs > MAX_RUNS:
        fail("runs", sweep.n_runs, f"at most {MAX_RUNS:,} runs per sweep (fewer seeds or values)")
    table = expand(sweep)
    facts = exp.prepare(sweep.cfg)
    platform = devices[0].platform
    buckets = []
    for cfg, runs in exp.buckets(sweep.cfg, table):
        per_run, out_bytes = exp.bytes_per_run(cfg), exp.output_bytes(cfg)
        # V runs in flight on each device, and at least their outputs held: within the budget.
        fit = budget // ((per_run + out_bytes) * n_dev)
        width = vector_runs or default_width(platform, fit, math.ceil(len(runs) / n_dev))
        step = n_dev * width
        wanted = chunk_runs or math.ceil(len(runs) / min_chunks)
        size = max(1, math.ceil(wanted / step)) * step
        if chunk_runs is None:  # a chunk's outputs get at most half the budget, and the room
            room = budget - per_run * width * n_dev  # the vectorized runs leave
            cap = min(budget // (2 * out_bytes), room // out_bytes) // step * step
            size = min(size, max(step, cap))
        peak = per_run * width * n_dev + out_bytes * size  # all devices: `bytes_per_chunk`
        if peak > budget:
            what = exp.describe(cfg) | {"vector_runs": width, "chunk_runs": size}
            fail(
                "max_memory",
                gib(budget),
                f"at least the plan's estimated peak, {gib(peak)} ({what}): "
                "raise --max-memory, or lower --vector-runs, --chunk-runs or the run's sizes",
            )
        buckets.append(Bucket(cfg, runs, int(size), int(width), per_run))
    results = sum(exp.output_bytes(b.cfg) * len(b.runs) for b in buckets)
    if results > host_memory() // 2:
        fail(
            "runs",
            table.n_runs,
            f"a sweep whose results fit half the host memory ({gib(results)} estimated, "
            f"{gib(host_memory())} present): fewer runs, steps or logged points",
        )
    return Plan(sweep, table, tuple(buckets), n_dev, int(budget), facts)


def default_width(platform: str, fit: int, runs_per_device: int) -> int:
    """The vector width V without --vector-runs: on a CPU VECTOR_RUNS["cpu"] (fewer if the
    budget holds fewer runs); on an accelerator the largest power of two at most
    VECTOR_RUNS["default"], the `fit` runs the budget holds, and the bucket's runs per device
    rounded up to a power of two (an 8-run sweep is not padded to thousands)."""
    if platform == "cpu":
        return int(max(1, min(VECTOR_RUNS["cpu"], fit)))
    wanted = min(VECTOR_RUNS["default"], fit, 2 ** math.ceil(math.log2(max(1, runs_per_device))))
    return 2 ** int(math.log2(max(1, wanted)))


def check_size(field: str, value: Any) -> None:
    """A memory size in bytes: a finite number >= 1 (not a bool, a string, NaN or inf)."""
    number = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or value < 1:
        fail(field, value, "a positive finite number of bytes (at least 1)")


def gib(size: int) -> str:
    return f"{size / 2**30:.3g} GiB"


def host_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30
