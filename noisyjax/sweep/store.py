"""A sweep directory on disk: one atomic store per chunk, `results.nc`, `config.json`.

Layout:
  config.json   resolved sweep, plan, versions, devices, precision, timing, status
  stages/       an Orbax `CheckpointManager` directory, one checkpoint per chunk, numbered by
                the chunk's first run index, with an item `outputs` (every metric of its
                runs; Orbax reserves the name `metrics`), one item per kept snapshot stage
                (arrays with a leading run axis) and a JSON item `meta` (run indices, the
                sweep's fingerprint, grid coordinates, stage times and a SHA-256 checksum
                of every other item)
  results.nc    the labelled xarray Dataset (`noisyjax.load_sweep`)
  *.png         the preset's figures

Orbax renames a checkpoint into place only when all of it is written, and every other file is
written to a temporary name and renamed, so a reader never sees a half-written file. A chunk
whose checkpoint does not load, belongs to another sweep or fails its checksums is redone,
never trusted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import numbers
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
import xarray as xr

from noisyjax.errors import ConfigError, fail
from noisyjax.sweep import faults
from noisyjax.sweep.spec import RunTable, Sweep, Zip, axes_of

STAGES_DIR = "stages"
RESULTS = "results.nc"
CONFIG = "config.json"
RTOL = 1e-9  # a coordinate value matches a stored one to within this relative difference


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
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would ignore the user's umask
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0o022)  # read it (there is no other way), then put it back
    os.umask(mask)
    return mask


def write_json(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def manager(out: Path, items: tuple[str, ...], *, read_only: bool = False):
    """The chunk store of a sweep directory (`items`: the snapshot stages it may hold)."""
    directory = (out / STAGES_DIR).absolute()
    if not read_only:
        directory.mkdir(parents=True, exist_ok=True)
    options = ocp.CheckpointManagerOptions(
        enable_async_checkpointing=not read_only,
        create=False,
        read_only=read_only,
        cleanup_tmp_directories=not read_only,  # checkpoints cut off mid-write
        # Only process 0 writes; the others never touch the directory.
        multiprocessing_options=ocp.options.MultiprocessingOptions(
            primary_host=0, active_processes={0}
        ),
    )
    names = tuple(items) + ("outputs", "meta")
    return ocp.CheckpointManager(directory, options=options, item_names=names)


def checksum(tree: Any) -> str:
    """SHA-256 of a tree of arrays: every leaf's path, dtype, shape and bytes (paths by key
    names, so a tree and its Orbax restoration, plain dicts, agree)."""
    digest = hashlib.sha256()
    named = [
        (
            "/".join(
                str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path
            ),
            leaf,
        )
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    ]
    for name, leaf in sorted(named, key=lambda nl: nl[0]):
        array = np.ascontiguousarray(np.asarray(leaf))
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def save_chunk(
    mngr,
    runs_C: np.ndarray,
    metrics: dict[str, np.ndarray],
    snapshots: dict[str, Any],
    meta: dict[str, Any],
) -> None:
    """Queue one chunk's store (asynchronous): metrics, snapshots and meta with checksums."""
    trees = {"outputs": metrics} | {name: snap._asdict() for name, snap in snapshots.items()}
    items = {name: ocp.args.StandardSave(dict(tree)) for name, tree in trees.items()}
    sums = {name: checksum(dict(tree)) for name, tree in trees.items()}
    items["meta"] = ocp.args.JsonSave({"runs": [int(r) for r in runs_C], **meta, "checksums": sums})
    mngr.save(int(runs_C[0]), args=ocp.args.Composite(**items), force=True)


def saved_runs(mngr) -> dict[int, list[int]]:
    """Finished checkpoints whose meta reads: first run index -> the chunk's run indices."""
    out = {}
    for step, meta in saved_meta(mngr).items():
        out[step] = list(meta["runs"])
    return out


def saved_meta(mngr) -> dict[int, dict[str, Any]]:
    out = {}
    for step in mngr.all_steps():
        try:
            restored = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
            out[step] = dict(restored["meta"])
        except Exception:  # noqa: BLE001  any unreadable checkpoint is redone, whatever failed
            continue
    return out


def restore_item(mngr, step: int, name: str, meta: dict[str, Any]) -> dict[str, np.ndarray]:
    """One item of a chunk, as NumPy arrays, checked against its checksum in `meta`; a
    `SweepDirError` naming the item (`stages/STEP/NAME`) when it is unreadable or differs."""
    item = f"{STAGES_DIR}/{step}/{name}"
    try:
        restored = mngr.restore(step, args=ocp.args.Composite(**{name: ocp.args.StandardRestore()}))
        tree = jax.tree.map(np.asarray, dict(restored[name]))
    except Exception as err:  # noqa: BLE001  whatever Orbax raises on a damaged item
        raise SweepDirError(f"{item} is unreadable ({first_line(err)})") from None
    if checksum(tree) != meta.get("checksums", {}).get(name):
        raise SweepDirError(f"{item} does not match its checksum")
    return tree


def first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def read_chunks(
    mngr, print_: str, n_runs: int, *, verify: bool = False
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The runs held by sound chunks, and their metrics; every other chunk is deleted.

    A chunk is sound when its meta reads, names this sweep's fingerprint and runs no other
    chunk holds, and its outputs match their checksum; with `verify` (on resume) every
    snapshot item is read back and checked too. Each chunk that is not is deleted, with one
    line on stderr saying why ("redoing chunk K: ...").
    """
    done = np.zeros(n_runs, bool)
    store: dict[str, np.ndarray] = {}
    metas = saved_meta(mngr)
    for step in sorted(mngr.all_steps()):
        meta = metas.get(step)
        try:
            if meta is None:
                raise SweepDirError(f"{STAGES_DIR}/{step}/meta is unreadable")
            if meta.get("fingerprint") != print_:
                raise SweepDirError("it was written by another sweep")
            runs = np.asarray(meta["runs"], np.int64)
            if runs.max() >= n_runs or done[runs].any():
                raise SweepDirError("its runs are not this sweep's, or another chunk holds them")
            metrics = restore_item(mngr, step, "outputs", meta)
            if store and set(metrics) != set(store):
                raise SweepDirError("it holds other outputs than the other chunks")
            if verify:
                for name in sorted(set(meta["checksums"]) - {"outputs"}):
                    restore_item(mngr, step, name, meta)
        except Exception as err:  # noqa: BLE001  whatever is wrong with it, the chunk is redone
            print(f"redoing chunk {step}: {first_line(err)}", file=sys.stderr)
            mngr.delete(step)
            continue
        for k, v in metrics.items():
            if k not in store:
                store[k] = np.zeros((n_runs,) + v.shape[1:], v.dtype)
            store[k][runs] = v
        done[runs] = True
    return done, store


def read_snapshots(
    sweep_dir: Path, stage: str, wanted: set[int], stages: tuple[str, ...]
) -> dict[int, dict[str, Any]]:
    """Run index -> that run's snapshot tree at `stage`, for the `wanted` runs, every chunk read
    checked against its checksum (any experiment's snapshots)."""
    mngr = manager(sweep_dir, stages, read_only=True)
    found: dict[int, dict[str, Any]] = {}
    try:
        for step, meta in saved_meta(mngr).items():
            position = {r: i for i, r in enumerate(meta["runs"]) if r in wanted}
            if not position:
                continue
            tree = restore_item(mngr, step, stage, meta)
            for r, i in position.items():
                found[r] = jax.tree.map(lambda v, i=i: v[i], tree)
    except Exception as err:  # noqa: BLE001  whatever Orbax raises on a damaged checkpoint
        raise SweepDirError(
            f"sweep {str(sweep_dir)!r}: stage checkpoint unreadable or corrupt "
            f"({first_line(err)}): rerun the sweep with --resume"
        ) from None
    finally:
        mngr.close()
    return found


def run_index(ds: xr.Dataset, coords: dict[str, Any]) -> xr.DataArray:
    """Flat run indices over the sweep's dimensions, selected by coordinates.

    The runs, and the chunks that store them, are numbered in the expansion order of the sweep
    as given (its `sweep` attribute, as config.json records it), while `results.nc` holds every
    axis in increasing order: each stored coordinate is mapped back to its position in the
    given axis. A scalar or a list selects by value, to within a relative RTOL (float
    rounding: n_snr2=8.0 finds 7.999999999999999); a slice selects like `Dataset.sel`.
    """
    spec = json.loads(ds.attrs["sweep"])
    given = {**dict(axes_of(spec)), "seed": list(range(spec["seeds"]))}
    dims = list(given)
    unknown = set(coords) - set(dims)
    if unknown:
        raise ConfigError(
            f"coordinate {sorted(unknown)[0]!r} is invalid: allowed " + ", ".join(dims)
        )
    positions = [given_positions(d, ds[d].values.tolist(), given[d]) for d in dims]
    flat = np.ravel_multi_index(
        np.meshgrid(*positions, indexing="ij"), [len(given[d]) for d in dims]
    )
    index = xr.DataArray(flat, dims=dims, coords={d: ds[d].values for d in dims})
    return select(index, coords)


def given_positions(name: str, stored: list, given: list) -> np.ndarray:
    """The position in the sweep's given axis order of each stored coordinate value (stored
    exactly as given; `match` only where a value did not survive exactly)."""
    exact = {v: i for i, v in enumerate(given)}
    try:
        found = [exact[v] if v in exact else match(name, given, v) for v in stored]
        return np.asarray(found, np.int64)
    except ConfigError:
        raise SweepDirError(
            f"coordinate {name!r} of {RESULTS} is invalid: allowed the values of its sweep "
            f"attribute ({len(given)} values)"
        ) from None


def select(index: xr.DataArray, coords: dict[str, Any]) -> xr.DataArray:
    """`index` at the coordinates: scalars and lists matched by `match`, slices by `sel`."""
    positional: dict[str, Any] = {}
    sliced: dict[str, slice] = {}
    for name, value in coords.items():
        stored = index[name].values.tolist()
        if isinstance(value, slice):
            sliced[name] = value
        elif np.ndim(value) == 0:
            positional[name] = match(name, stored, np.asarray(value).item())
        else:
            positional[name] = [match(name, stored, v) for v in np.ravel(value).tolist()]
    return index.isel(positional).sel(sliced)


def match(name: str, values: list, wanted: Any) -> int:
    """The position of `wanted` among `values`, equal to within a relative RTOL; a one-line
    `ConfigError` naming the coordinate and its values when none or several match."""
    hits: list[int] = []
    if isinstance(wanted, numbers.Real) and not isinstance(wanted, bool) and np.isfinite(wanted):
        x = float(wanted)
        hits = [i for i, v in enumerate(values) if abs(v - x) <= RTOL * max(abs(v), abs(x))]
    if len(hits) != 1:
        shown = ", ".join(repr(v) for v in values[:10]) + (", ..." if len(values) > 10 else "")
        which = "exactly one" if hits else "one"
        fail(name, wanted, f"{which} of its values {shown} (to a relative {RTOL:g})")
    return hits[0]


def sweep_of(ds: xr.Dataset) -> Sweep:
    """The sweep a results file was written by (its `sweep` attribute)."""
    return Sweep.from_dict(json.loads(ds.attrs["sweep"]))


def to_dataset(
    sweep: Sweep, table: RunTable, metrics: dict[str, np.ndarray], attrs: dict[str, Any]
) -> xr.Dataset:
    """Label the runs: one dimension per axis plus `seed`, and the experiment's time axis for
    trajectories (`step`, or `epoch` for real-image sweeps)."""
    dims = sweep.dims
    shape = sweep.shape
    time = sweep.experiment.time
    # Axis values as the grid was given, without the float noise of lin:/log: specs
    # (7.999999999999999 is stored as 8.0; runs are still found to within rounding).
    coords: dict[str, Any] = {a.name: [rounded(v) for v in a.values] for a in sweep.axes}
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
    for zipped in (a for a in sweep.axes if isinstance(a, Zip)):  # its fields, over its points
        ds = ds.assign_coords({c.name: (zipped.name, list(c.values)) for c in zipped.fields})
    # Every run's resolved settings (the table's columns: hyperparameters, then shapes), as
    # coordinates over the sweep's dimensions.
    for name, column in {**table.hp, **table.shape}.items():
        if name not in ds.coords:
            ds = ds.assign_coords({name: (dims, column.reshape(shape))})
    # Axis values in increasing order whatever order they were given in (figures and `sel`
    # slices need monotonic coordinates; a run is found by its coordinates, not its position).
    ds = ds.sortby([a.name for a in sweep.axes]) if sweep.axes else ds
    describe_variables(ds, sweep.experiment.variables)
    ds.attrs.update(
        Conventions=CONVENTIONS,
        title=f"noisyjax sweep {sweep.name!r} ({sweep.experiment.name})",
        history=f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}: "
        + " ".join(["python -m sweeps.grid" if a.endswith("grid.py") else a for a in sys.argv]),
        **{k: attribute(v) for k, v in attrs.items()},
    )
    return ds


CONVENTIONS = "CF-1.10"
NEVER = -1  # a step or epoch count that was never reached; stored as the fill value
FLAGS = {"flag_values": np.array([0, 1], np.int8), "flag_meanings": "false true"}


def rounded(value: Any) -> Any:
    """A float to 12 significant digits (integers unchanged)."""
    return float(f"{value:.12g}") if isinstance(value, float) else value


def attribute(value: Any) -> Any:
    """A global attribute's value: strings and numbers as they are (booleans as 0 or 1: netCDF
    has no boolean), anything else as JSON."""
    if isinstance(value, bool | np.bool_):
        return np.int8(value)
    if isinstance(value, str | numbers.Number):
        return value
    return json.dumps(value, default=str)


def describe_variables(ds: xr.Dataset, variables) -> None:
    """CF `long_name`, `units` and a one-sentence `description` on every variable and
    coordinate the experiment describes (`Experiment.variables`)."""
    for name in ds.variables:
        entry = variables(str(name))
        if entry is not None:
            long_name, units, description = entry
            ds[name].attrs.update(long_name=long_name, units=units, description=description)


def encoded(ds: xr.Dataset) -> xr.Dataset:
    """The dataset as results.nc stores it: booleans as int8 flags (`flag_values`,
    `flag_meanings`), and step counts with NEVER as `_FillValue`, so that readers decode a
    never-reached marker as missing."""
    out = ds.copy()
    for name, da in ds.variables.items():
        if da.dtype == bool:
            out[name] = da.astype(np.int8)
            out[name].attrs.update(da.attrs, **FLAGS)
        elif np.issubdtype(da.dtype, np.integer) and da.attrs.get("units") in ("steps", "epochs"):
            if name not in ds.dims:
                out[name].encoding["_FillValue"] = np.asarray(NEVER, da.dtype)
    return out


def decoded(ds: xr.Dataset) -> xr.Dataset:
    """results.nc as read back: flags as booleans again (a never-reached step is NaN)."""
    for name, da in ds.variables.items():
        if da.attrs.get("flag_meanings") == FLAGS["flag_meanings"]:
            attrs = {k: v for k, v in da.attrs.items() if k not in FLAGS}
            ds[name] = da.astype(bool)
            ds[name].attrs = attrs
    return ds


def as_read(ds: xr.Dataset) -> xr.Dataset:
    """The dataset as `read_dataset` returns it once `write_dataset` has written it, without
    reading the file: CF-decoded from its encoded form (never-reached steps as NaN, flags as
    booleans)."""
    out = encoded(ds)
    for da in out.variables.values():
        if "_FillValue" in da.encoding:
            da.attrs["_FillValue"] = da.encoding.pop("_FillValue")
    return decoded(xr.decode_cf(out))


def write_dataset(ds: xr.Dataset, path: Path) -> None:
    with atomic_path(path) as tmp:
        encoded(ds).to_netcdf(tmp, engine="h5netcdf")
        faults.reach("results-write")


def read_dataset(path: Path) -> xr.Dataset:
    return decoded(xr.load_dataset(path, engine="h5netcdf"))


def file_checksum(path: Path) -> str:
    """The file's SHA-256 as hex."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def load_sweep(directory: str | os.PathLike) -> xr.Dataset:
    """The labelled results of a finished sweep directory, checked against the checksum that
    config.json recorded for them (when it has one)."""
    path = Path(directory) / RESULTS
    if not path.is_file():
        raise SweepDirError(
            f"sweep directory {str(directory)!r} has no {RESULTS}: allowed a "
            "directory written by a finished `python -m sweeps.grid`"
        )
    recorded = None
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        recorded = json.loads((Path(directory) / CONFIG).read_text()).get("results_sha256")
    if recorded is not None and file_checksum(path) != recorded:
        raise SweepDirError(
            f"sweep directory {str(directory)!r}: {RESULTS} does not match its checksum in "
            f"{CONFIG}: allowed an unaltered results file; delete it and rerun with --resume"
        )
    try:
        return read_dataset(path)
    except (OSError, ValueError) as err:
        raise SweepDirError(
            f"sweep directory {str(directory)!r}: {RESULTS} is unreadable ({type(err).__name__}): "
            "allowed a complete results file; rerun the sweep with --resume"
        ) from None
