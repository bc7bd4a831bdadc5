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
import os
from typing import Any

import jax
import numpy as np

from noisyjax.config import fail
from noisyjax.sweep.spec import RunTable, Sweep, expand

# Default vector width: enough to fill SIMD units on a CPU, wide batches on accelerators.
VECTOR_RUNS = {"cpu": 8, "default": 256}


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

    The vector width V is `vector_runs`, or the backend default lowered until V runs fit
    `max_memory` on every device. A chunk is devices x V x groups runs, with as many groups as
    keep at least `min_chunks` chunks per bucket (progress and resume granularity) and its
    outputs within half the budget; `chunk_runs` overrides it, rounded up to a multiple of
    devices x V.
    """
    devices = jax.local_devices() if devices is None else devices
    n_dev = len(devices)
    budget = default_max_memory(devices) if max_memory is None else max_memory
    for name, value in (("chunk_runs", chunk_runs), ("vector_runs", vector_runs)):
        if value is not None and (isinstance(value, bool) or value < 1):
            fail(name, value, "an integer >= 1")
    if budget <= 0:
        fail("max_memory", budget, "a positive size")
    exp = sweep.experiment
    table = expand(sweep)
    facts = exp.prepare(sweep.cfg)
    default_width = VECTOR_RUNS.get(devices[0].platform, VECTOR_RUNS["default"])
    buckets = []
    for cfg, runs in exp.buckets(sweep.cfg, table):
        per_run = exp.bytes_per_run(cfg)
        width = vector_runs or int(max(1, min(default_width, budget // (per_run * n_dev))))
        step = n_dev * width
        wanted = chunk_runs or math.ceil(len(runs) / min_chunks)
        if chunk_runs is None:  # a chunk's outputs (metrics, snapshots) get half the budget
            wanted = min(wanted, max(1, budget // (2 * exp.output_bytes(cfg))))
        size = max(1, math.ceil(wanted / step)) * step
        buckets.append(Bucket(cfg, runs, int(size), int(width), per_run))
    return Plan(sweep, table, tuple(buckets), n_dev, int(budget), facts)
