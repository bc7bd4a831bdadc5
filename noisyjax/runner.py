"""Run a sweep into its directory: check the output, run the missing chunks, label, plot.

Layout of a sweep directory:
  config.json   resolved sweep, plan, versions, devices, precision, timing, status
  chunks/       one .npz per finished chunk (what --resume keeps)
  results.nc    the labelled xarray Dataset (`noisyjax.load_sweep`)
  *.png         the preset's figures
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from noisyjax import checkpoints, distributed, faults
from noisyjax.config import TRANSITION_NAMES
from noisyjax.grid import Sweep
from noisyjax.results import (
    CHUNK_DIR,
    CONFIG,
    RESULTS,
    SweepDirError,
    fingerprint,
    read_chunks,
    to_dataset,
    write_chunk,
    write_dataset,
    write_json,
)
from noisyjax.sweep import Plan, Timing, run_chunks

Figures = Callable[[xr.Dataset, Path], list[Path]]
PACKAGES = (
    "jax",
    "jaxlib",
    "optax",
    "flax",
    "chex",
    "orbax-checkpoint",
    "numpy",
    "xarray",
    "h5netcdf",
    "noisyjax",
)


def check_out_dir(out: Path, *, resume: bool, print_: str) -> None:
    """Refuse an output directory that cannot be used, before anything is written."""
    if out.exists() and not out.is_dir():
        raise SweepDirError(f"--out {str(out)!r} is a file: allowed a new or resumable directory")
    if resume:
        config = out / CONFIG
        if not config.is_file():
            raise SweepDirError(
                f"--resume {str(out)!r} has no {CONFIG}: allowed the directory "
                "of an interrupted sweep"
            )
        import json

        try:
            previous = json.loads(config.read_text())["fingerprint"]
        except (ValueError, KeyError, TypeError, OSError) as err:
            raise SweepDirError(f"--resume {str(out)!r}: {CONFIG} is unreadable ({err})") from None
        if previous != print_:
            raise SweepDirError(
                f"--resume {str(out)!r} was written by a different sweep "
                f"(fingerprint {previous} != {print_}): allowed the same preset, "
                "settings and axes"
            )
        return
    if out.exists() and any(out.iterdir()):
        raise SweepDirError(
            f"--out {str(out)!r} exists and is not empty: allowed a new "
            "directory, or --resume to finish that sweep"
        )
    ancestor = out
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise SweepDirError(
            f"--out {str(out)!r} is not writable ({str(ancestor)!r} is not a "
            "writable directory): allowed a writable path"
        )


def environment() -> dict[str, Any]:
    """Library versions, devices and numerical precision, for config.json."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    devices = jax.devices()
    return {
        "versions": versions,
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "local_device_count": jax.local_device_count(),
        "process_count": jax.process_count(),
        "matmul_precision": str(jax.config.jax_default_matmul_precision or "default"),
        "x64": bool(jax.config.jax_enable_x64),
    }


def numerics(plan: Plan) -> dict[str, Any]:
    """What besides the settings decides a run's last bits (part of the fingerprint)."""
    return {
        "vector_runs": [b.vector_runs for b in plan.buckets],
        "backend": jax.default_backend(),
        "matmul_precision": str(jax.config.jax_default_matmul_precision or "default"),
    }


def run_sweep(
    plan: Plan,
    out: Path,
    *,
    resume: bool = False,
    figures: Figures | None = None,
    progress: bool = True,
    chunks: Callable = run_chunks,
) -> xr.Dataset:
    """Run every chunk of `plan` that `out` does not hold yet, then write results and figures.

    In a multi-process run every process calls this; each runs its share of the chunks and
    process 0 writes all files. `chunks(plan, todo, timing=...)` yields each chunk's (runs,
    metrics, snapshots): the synthetic runner by default, `noisyjax.real.sweep.run_real_chunks`
    for real-image sweeps.
    """
    sweep, table = plan.sweep, plan.table
    print_ = fingerprint(sweep, numerics(plan))
    lead = jax.process_index() == 0
    if lead:
        check_out_dir(out, resume=resume, print_=print_)
        (out / CHUNK_DIR).mkdir(parents=True, exist_ok=True)
    header = {
        "fingerprint": print_,
        "sweep": sweep.to_dict(),
        "plan": plan.summary(),
        "environment": environment(),
        "status": "running",
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    done = np.zeros(table.n_runs, bool)
    mngr = checkpoints.manager(out) if lead else None
    if lead:
        if resume:
            done, _ = consistent_chunks(out, print_, table.n_runs, mngr, verify=True)
        write_json(out / CONFIG, header)
    done = distributed.broadcast(done)
    todo = np.flatnonzero(~done)
    timing = Timing()
    with tqdm(
        total=len(todo),
        unit="run",
        desc=sweep.name,
        disable=not (progress and lead),
        dynamic_ncols=True,
    ) as bar:
        for runs_C, metrics, snapshots in distributed.share(plan, todo, chunks, timing):
            if lead:
                checkpoints.save_chunk(mngr, runs_C, snapshots, chunk_meta(plan, runs_C, metrics))
                faults.reach("checkpoint")
                write_chunk(out, runs_C, metrics, print_)
            bar.update(len(runs_C))
    if not lead:
        return xr.Dataset()
    mngr.wait_until_finished()  # every snapshot is on disk before results are declared
    done, metrics = consistent_chunks(out, print_, table.n_runs, mngr)
    mngr.close()
    if not done.all():
        raise SweepDirError(
            f"sweep {str(out)!r} is missing {int((~done).sum())} runs after "
            "running: rerun with --resume"
        )
    header.update(status="complete", timing={"compile_s": timing.compile_s, "run_s": timing.run_s})
    ds = to_dataset(
        sweep,
        table,
        metrics,
        {"fingerprint": print_, "sweep": sweep.to_dict(), **header["environment"]},
    )
    write_dataset(ds, out / RESULTS)
    write_json(out / CONFIG, header)  # results and status are final before any figure
    if figures is not None:
        drawn, skipped = draw_figures(figures, ds, out)
        header.update(figures=drawn, **({"figures_skipped": skipped} if skipped else {}))
        write_json(out / CONFIG, header)
    return ds


def draw_figures(figures: Figures, ds: xr.Dataset, out: Path) -> tuple[list[str], str | None]:
    """Draw a sweep's figures; figure code that fails costs the figures, never the sweep: one
    warning line on stderr says what was skipped and why, and the sweep stays complete."""
    try:
        return [p.name for p in figures(ds, out)], None
    except Exception as err:  # noqa: BLE001 (any figure bug: the results are already safe)
        first = (str(err).strip().splitlines() or [""])[0]
        reason = f"{type(err).__name__}: {first}" if first else type(err).__name__
        print(f"warning: figures skipped ({reason}); the results are complete", file=sys.stderr)
        return [], reason


def consistent_chunks(
    out: Path, print_: str, n_runs: int, mngr, *, verify: bool = False
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Runs whose chunk file and stage checkpoint are both complete, and their metrics; the
    rest is removed.

    A chunk file without its checkpoint (or the reverse, or a corrupt file) is redone, never
    trusted, so a sweep killed at any point resumes to the same results and checkpoints. With
    `verify` (on resume) every checkpoint is read back in full.
    """
    for stray in [*out.glob(".*.tmp"), *(out / CHUNK_DIR).glob(".*.tmp")]:
        stray.unlink()  # a write that was cut off: never read, removed
    files, metrics, bad = read_chunks(out, print_, n_runs)
    for path in bad:
        path.unlink()
    done = np.zeros(n_runs, bool)
    for runs in files.values():
        done[runs] = True
    saved = checkpoints.saved_runs(mngr, verify=verify)
    for step in set(mngr.all_steps()) - set(saved):
        mngr.delete(step)  # unreadable
    covered = np.zeros(n_runs, bool)
    for step, runs in saved.items():
        if done[runs].all():
            covered[runs] = True
        else:
            mngr.delete(step)
    for path, runs in files.items():
        if not covered[runs].all():
            path.unlink()
    return done & covered, metrics


def chunk_meta(plan: Plan, runs_C: np.ndarray, metrics: dict[str, np.ndarray]) -> dict:
    """Grid coordinates and stage times of a chunk's runs, stored beside its snapshots."""
    sweep, table = plan.sweep, plan.table
    cells = np.unravel_index(runs_C, sweep.shape)
    coords = {axis.name: [axis.values[i] for i in cells[k]] for k, axis in enumerate(sweep.axes)}
    coords["seed"] = [int(table.seed[r]) for r in runs_C]
    times = {t: [int(v) for v in metrics[t]] for t in TRANSITION_NAMES}
    return {"coords": coords, "stage_times": times}


def default_out(sweep: Sweep, root: Path = Path("checkpoints")) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return root / f"{sweep.name}-{stamp}"
