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
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from noisyjax import distributed
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
PACKAGES = ("jax", "jaxlib", "optax", "flax", "chex", "orbax-checkpoint", "numpy", "xarray",
            "h5netcdf", "noisyjax")


def check_out_dir(out: Path, *, resume: bool, print_: str) -> None:
    """Refuse an output directory that cannot be used, before anything is written."""
    if out.exists() and not out.is_dir():
        raise SweepDirError(f"--out {str(out)!r} is a file: allowed a new or resumable directory")
    if resume:
        config = out / CONFIG
        if not config.is_file():
            raise SweepDirError(f"--resume {str(out)!r} has no {CONFIG}: allowed the directory "
                                "of an interrupted sweep")
        import json

        try:
            previous = json.loads(config.read_text())["fingerprint"]
        except (ValueError, KeyError) as err:
            raise SweepDirError(f"--resume {str(out)!r}: {CONFIG} is unreadable ({err})") from None
        if previous != print_:
            raise SweepDirError(f"--resume {str(out)!r} was written by a different sweep "
                                f"(fingerprint {previous} != {print_}): allowed the same preset, "
                                "settings and axes")
        return
    if out.exists() and any(out.iterdir()):
        raise SweepDirError(f"--out {str(out)!r} exists and is not empty: allowed a new "
                            "directory, or --resume to finish that sweep")
    ancestor = out
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise SweepDirError(f"--out {str(out)!r} is not writable ({str(ancestor)!r} is not a "
                            "writable directory): allowed a writable path")


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
        "versions": versions, "python": platform.python_version(),
        "backend": jax.default_backend(), "device_kind": devices[0].device_kind,
        "device_count": len(devices), "local_device_count": jax.local_device_count(),
        "process_count": jax.process_count(),
        "matmul_precision": str(jax.config.jax_default_matmul_precision or "default"),
        "x64": bool(jax.config.jax_enable_x64),
    }


def run_sweep(plan: Plan, out: Path, *, resume: bool = False, figures: Figures | None = None,
              progress: bool = True) -> xr.Dataset:
    """Run every chunk of `plan` that `out` does not hold yet, then write results and figures.

    In a multi-process run every process calls this; each runs its share of the chunks and
    process 0 writes all files.
    """
    sweep, table = plan.sweep, plan.table
    print_ = fingerprint(sweep)
    lead = jax.process_index() == 0
    if lead:
        check_out_dir(out, resume=resume, print_=print_)
        (out / CHUNK_DIR).mkdir(parents=True, exist_ok=True)
    header = {"fingerprint": print_, "sweep": sweep.to_dict(), "plan": plan.summary(),
              "environment": environment(), "status": "running",
              "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    done = np.zeros(table.n_runs, bool)
    if lead:
        if resume:
            done, _, bad = read_chunks(out, print_, table.n_runs)
            for path in bad:  # unreadable or foreign chunks are redone, never trusted
                path.unlink()
        write_json(out / CONFIG, header)
    done = distributed.broadcast(done)
    todo = np.flatnonzero(~done)
    timing = Timing()
    with tqdm(total=len(todo), unit="run", desc=sweep.name, disable=not (progress and lead),
              dynamic_ncols=True) as bar:
        for runs_C, metrics in distributed.share(plan, todo, run_chunks, timing):
            if lead:
                write_chunk(out, runs_C, metrics, print_)
            bar.update(len(runs_C))
    if not lead:
        return xr.Dataset()
    done, metrics, bad = read_chunks(out, print_, table.n_runs)
    if bad or not done.all():
        raise SweepDirError(f"sweep {str(out)!r} is missing {int((~done).sum())} runs after "
                            "running: rerun with --resume")
    header.update(status="complete", timing={"compile_s": timing.compile_s,
                                             "run_s": timing.run_s})
    ds = to_dataset(sweep, table, metrics, {"fingerprint": print_, "sweep": sweep.to_dict(),
                                           **header["environment"]})
    write_dataset(ds, out / RESULTS)
    if figures is not None:
        header["figures"] = [p.name for p in figures(ds, out)]
    write_json(out / CONFIG, header)
    return ds


def default_out(sweep: Sweep, root: Path = Path("checkpoints")) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return root / f"{sweep.name}-{stamp}"
