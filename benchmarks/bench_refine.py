"""Adaptive refinement against the full grid: kou2023-boundary beside kou2023-grid.

Both presets run as a user runs them (`python -m sweeps.grid --preset NAME`, each in a fresh
process), one after the other in this one invocation, with the same compilation-cache state: a
throwaway persistent cache, empty for the first pass of each (cold, compilation included) and
reused by a second pass (warm) with `--repeats 2`. For each the wall time of the whole command
is taken; the ratio is refined over full. Then the boundary each located is compared, cell by
cell (each of Kou et al.'s 100 d values): the full grid's crossing is the same rule
(`noisyjax.sweep.refine.crossing`: the last bracket of the seed means along b, interpolated)
applied to its 100 b values; the refinement's is boundary.nc's. The issue asks for at least 90%
of the d values within one grid step (0.1 in b), at most a fifth of the runs and at most a
quarter of the time.

Usage:
  python -m benchmarks.bench_refine                    # about 5 minutes on an idle 2-core CPU
  python -m benchmarks.bench_refine --repeats 2        # and a warm-cache pass of each
  python -m benchmarks.bench_refine --json refine.json
  python -m benchmarks.bench_refine --args "--set steps=20" --full kou2023-grid --axis-d 100,550
      (a quick check of the script itself: fewer steps and d values)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GRID_STEP = 0.1  # Kou et al.'s b grid


def run_preset(name: str, out: Path, extra: list[str], cache: Path) -> float:
    """Wall seconds of `python -m sweeps.grid --preset NAME` into `out` (fresh process)."""
    env = {**os.environ, "NOISYJAX_COMPILE_CACHE": str(cache)}
    command = [sys.executable, "-m", "sweeps.grid", "--preset", name, "--no-progress"]
    command += ["--out", str(out), *extra]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"bench_refine: {shlex.join(command)} failed:\n{result.stderr}")
    return seconds


def agreement(full_dir: Path, refined_dir: Path) -> dict:
    """The two located boundaries, cell by cell."""
    import noisyjax as nj
    from noisyjax.sweep import refine

    grid = nj.load_sweep(full_dir)
    boundary = refine.load_refinement(refined_dir)
    err = grid["test_err_noisy_labels"].isel(step=-1).mean("seed").transpose("d", "mu_norm")
    bs = err["mu_norm"].values
    full = np.array([refine.crossing(bs, row, 0.2, False) for row in err.values])
    located = boundary["crossing"].sel(d=err["d"].values).values
    diff = np.abs(full - located)
    low, high = boundary["crossing_low"].values, boundary["crossing_high"].values
    return {
        "cells": int(len(diff)),
        "within_one_grid_step": float(np.mean(diff <= GRID_STEP)),
        "max_difference": float(np.nanmax(diff)),
        "median_difference": float(np.nanmedian(diff)),
        "full_crossing_in_interval": float(np.mean((low <= full) & (full <= high))),
        "cells_not_monotone": int((~boundary["monotone"].values).sum()),
        "runs_refined": int(boundary.attrs["runs"]),
        "runs_full": int(grid.sizes["mu_norm"] * grid.sizes["d"] * grid.sizes["seed"]),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=1, help="passes of each (1: cold only)")
    p.add_argument("--full", default="kou2023-grid")
    p.add_argument("--refined", default="kou2023-boundary")
    p.add_argument("--args", default="", help="extra arguments for both commands")
    p.add_argument("--axis-d", default=None, help="a d axis for both (a quick check)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    extra = shlex.split(args.args) + (["--axis", f"d={args.axis_d}"] if args.axis_d else [])
    load = os.getloadavg()[0]
    times: dict[str, list[float]] = {args.full: [], args.refined: []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for k in range(args.repeats):
            for name in (args.full, args.refined):
                out = tmp / f"{name}-{k}"
                times[name].append(run_preset(name, out, extra, tmp / f"cache-{name}"))
                print(f"{name} pass {k + 1}: {times[name][-1]:.1f} s", file=sys.stderr)
        compared = agreement(tmp / f"{args.full}-0", tmp / f"{args.refined}-0")
    cold = times[args.refined][0] / times[args.full][0]
    report = {
        "machine": {
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "load_average_at_start": load,
            "python": platform.python_version(),
        },
        "commands": {name: f"python -m sweeps.grid --preset {name}" for name in times},
        "extra_args": extra,
        "wall_s": times,
        "time_ratio_cold": cold,
        **(
            {"time_ratio_warm": times[args.refined][1] / times[args.full][1]}
            if args.repeats > 1
            else {}
        ),
        **compared,
        "runs_ratio": compared["runs_refined"] / compared["runs_full"],
    }
    print(
        f"| | {args.full} | {args.refined} | ratio |\n|---|---|---|---|\n"
        f"| runs | {compared['runs_full']:,} | {compared['runs_refined']:,} | "
        f"{report['runs_ratio']:.3f} |\n"
        + "".join(
            f"| wall s, pass {k + 1} ({'cold' if k == 0 else 'warm'} cache) | "
            f"{times[args.full][k]:.1f} | {times[args.refined][k]:.1f} | "
            f"{times[args.refined][k] / times[args.full][k]:.3f} |\n"
            for k in range(args.repeats)
        )
        + f"\nd values whose crossing agrees within {GRID_STEP}: "
        f"{compared['within_one_grid_step']:.0%} (max difference {compared['max_difference']:.3f}, "
        f"median {compared['median_difference']:.4f}); full grid's crossing inside the 95% "
        f"interval: {compared['full_crossing_in_interval']:.0%}; load average at start "
        f"{load:.2f} on {os.cpu_count()} CPUs"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
