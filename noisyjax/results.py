"""A sweep directory on disk: chunk files, `results.nc`, `config.json`.

Every file is written to a temporary name and renamed into place, so a reader never sees a
half-written file; chunk files carry their run indices and the sweep's fingerprint, and a chunk
that does not load or does not match is redone rather than trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from noisyjax import faults
from noisyjax.grid import RunTable, Sweep

CHUNK_DIR = "chunks"
RESULTS = "results.nc"
CONFIG = "config.json"


class SweepDirError(ValueError):
    """A sweep directory cannot be used as asked (exists, differs, unwritable, corrupt)."""


def fingerprint(sweep: Sweep, numerics: dict[str, Any] | None = None) -> str:
    """A hash of the sweep's settings and of the numerics that decide its rounding (vector
    widths, backend, matmul precision): a resume must match both."""
    text = json.dumps({"sweep": sweep.to_dict(), "numerics": numerics or {}}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def write_chunk(out: Path, runs_C: np.ndarray, metrics: dict[str, np.ndarray], print_: str) -> Path:
    """Save one chunk's metrics with its run indices and the sweep fingerprint."""
    path = out / CHUNK_DIR / f"runs-{int(runs_C[0]):08d}-{len(runs_C):06d}.npz"
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        faults.reach("chunk-write")
        np.savez(
            fh,
            __runs__=runs_C,
            __fingerprint__=np.asarray(print_),
            **{f"m_{k}": v for k, v in metrics.items()},
        )
    return path


def read_chunks(
    out: Path, print_: str, n_runs: int
) -> tuple[dict[Path, np.ndarray], dict[str, np.ndarray], list[Path]]:
    """Load every valid chunk: (its run indices by file, metrics by run, invalid files found)."""
    done = np.zeros(n_runs, bool)
    valid: dict[Path, np.ndarray] = {}
    store: dict[str, np.ndarray] = {}
    bad: list[Path] = []
    for path in sorted((out / CHUNK_DIR).glob("runs-*.npz")):
        try:
            with np.load(path) as z:
                runs = z["__runs__"]
                if str(z["__fingerprint__"]) != print_ or runs.max() >= n_runs or done[runs].any():
                    raise ValueError("chunk does not belong to this sweep")
                metrics = {k[2:]: z[k] for k in z.files if k.startswith("m_")}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            bad.append(path)
            continue
        if store and set(metrics) != set(store):
            bad.append(path)
            continue
        for k, v in metrics.items():
            if k not in store:
                store[k] = np.zeros((n_runs,) + v.shape[1:], v.dtype)
            store[k][runs] = v
        done[runs] = True
        valid[path] = runs
    return valid, store, bad


def to_dataset(
    sweep: Sweep, table: RunTable, metrics: dict[str, np.ndarray], attrs: dict[str, Any]
) -> xr.Dataset:
    """Label the runs: one dimension per axis plus `seed`, and `step` for trajectories (`epoch`
    when the metrics log epochs, as real-image sweeps do)."""
    dims = sweep.dims
    shape = sweep.shape
    time = "epoch" if "epoch" in metrics else "step"
    coords: dict[str, Any] = {a.name: list(a.values) for a in sweep.axes}
    coords["seed"] = np.arange(sweep.seeds)
    coords[time] = metrics[time][0]
    data = {}
    for name, value in metrics.items():
        if name == time:
            continue
        # Trajectories have a step axis; per-sample outputs (sample_*) end with a sample axis.
        extra = ((time,) if value.ndim - name.startswith("sample_") == 2 else ()) + (
            ("sample",) if name.startswith("sample_") else ()
        )
        data[name] = (dims + extra, value.reshape(shape + value.shape[1:]))
    ds = xr.Dataset(data, coords=coords)
    # Every run's resolved settings (the table's columns: hyperparameters, then shapes), as
    # coordinates over the sweep's dimensions.
    for name, column in {**table.hp, **table.shape}.items():
        if name not in ds.coords:
            ds = ds.assign_coords({name: (dims, column.reshape(shape))})
    # Axis values in increasing order whatever order they were given in (figures and `sel`
    # slices need monotonic coordinates; a run is found by its coordinates, not its position).
    ds = ds.sortby([a.name for a in sweep.axes]) if sweep.axes else ds
    # netCDF attributes hold strings and numbers only: everything else is stored as JSON.
    ds.attrs.update(
        {k: v if isinstance(v, str) else json.dumps(v, default=str) for k, v in attrs.items()}
    )
    return ds


def write_dataset(ds: xr.Dataset, path: Path) -> None:
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")
        faults.reach("results-write")


def load_sweep(directory: str | os.PathLike) -> xr.Dataset:
    """The labelled results of a finished sweep directory."""
    path = Path(directory) / RESULTS
    if not path.is_file():
        raise SweepDirError(
            f"sweep directory {str(directory)!r} has no {RESULTS}: allowed a "
            "directory written by a finished `python -m sweeps.grid`"
        )
    try:
        return xr.load_dataset(path, engine="h5netcdf")
    except (OSError, ValueError) as err:
        raise SweepDirError(
            f"sweep directory {str(directory)!r}: {RESULTS} is unreadable ({type(err).__name__}): "
            "allowed a complete results file; rerun the sweep with --resume"
        ) from None
