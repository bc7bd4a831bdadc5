"""Fault injection for the robustness tests: die by SIGKILL at a named point of a sweep.

Setting NOISYJAX_FAULT="POINT:K" makes the process kill itself, with no cleanup at all, the K-th
time it reaches POINT (K defaults to 1). Unset, `reach` costs one dictionary lookup. Points:
  compile        before a bucket's program is compiled
  chunk          after a chunk has run, before anything of it is written
  checkpoint     right after a chunk's store is queued (its Orbax write in flight)
  results-write  inside results.nc's write, before its atomic rename
"""

from __future__ import annotations

import os
import signal

ENV = "NOISYJAX_FAULT"
POINTS = ("compile", "chunk", "checkpoint", "results-write")
_arrivals: dict[str, int] = {}


def reach(point: str) -> None:
    """Count an arrival at `point`; SIGKILL this process if NOISYJAX_FAULT asks for it."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    name, _, count = spec.partition(":")
    if name != point:
        return
    _arrivals[point] = _arrivals.get(point, 0) + 1
    if _arrivals[point] == int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)
