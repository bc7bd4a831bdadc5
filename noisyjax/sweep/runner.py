"""Run a sweep into its directory: check the output, run the missing chunks, label, plot.

The directory's layout is `noisyjax.sweep.store`'s. Any experiment runs here the same way: the
plan says what to run, `run_chunks` runs it, each chunk is stored once, atomically, and the
labelled results are written before any figure is drawn.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import functools
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from noisyjax.sweep import distributed, faults, store
from noisyjax.sweep.execute import Timing, run_chunks
from noisyjax.sweep.plan import Plan
from noisyjax.sweep.spec import Sweep
from noisyjax.sweep.store import (
    CONFIG,
    RESULTS,
    STAGES_DIR,
    SweepDirError,
    fingerprint,
    write_json,
)

Figures = Callable[[xr.Dataset, Path], list[Path]]
PACKAGES = (
    "jax",
    "jaxlib",
    "optax",
    "flax",
    "orbax-checkpoint",
    "numpy",
    "xarray",
    "h5netcdf",
    "noisyjax",
)


class Terminated(BaseException):
    """SIGTERM, raised where the sweep was (the CLI installs the handler)."""


# The signals the command line's handlers received (sweeps.launch), in order. Python drops an
# exception raised inside a garbage-collection callback or a finalizer ("Exception ignored
# in ..."), so a signal landing there would be lost; the chunk loop raises it again at the
# next chunk boundary (`raise_received`).
received: list[str] = []


def signal_error(name: str) -> BaseException:
    """What a received signal raises: KeyboardInterrupt for SIGINT, Terminated for SIGTERM."""
    return KeyboardInterrupt() if name == "SIGINT" else Terminated()


def raise_received() -> None:
    """Raise the first received signal's exception again, if one was received."""
    if received:
        raise signal_error(received[0])


class SweepInterrupted(Exception):
    """A sweep stopped by SIGINT or SIGTERM after storing `stored` of `chunks` chunks; every
    stored chunk is complete, so `--resume` finishes it."""

    def __init__(self, out: Path, stored: int, chunks: int, signal_name: str) -> None:
        super().__init__(f"interrupted ({signal_name}) after {stored} of {chunks} chunks")
        self.out, self.stored, self.chunks, self.signal_name = out, stored, chunks, signal_name


@contextlib.contextmanager
def writer_lock(out: Path):
    """Hold an exclusive OS lock (`flock`) on the sweep directory while the sweep writes it; a
    second writer is refused, told who holds it (config.json's `writer`). On a file system
    without locks (some network mounts) the sweep runs unlocked, with one warning line."""
    fd = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = "another process"
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                w = json.loads((out / CONFIG).read_text())["writer"]
                holder = f"process {w['pid']} on {w['host']} (since {w['since']})"
            raise SweepDirError(
                f"--out {str(out)!r} is being written by {holder}: allowed one writer at a "
                "time; wait for it to end, or use another --out"
            ) from None
        except OSError as err:
            print(
                f"warning: {str(out)!r} cannot be locked ({err.strerror}); running unlocked",
                file=sys.stderr,
            )
        yield
    finally:
        os.close(fd)  # releases the lock


def check_out_dir(out: Path, *, resume: bool, print_: str, given: dict | None = None) -> None:
    """Refuse an output directory that cannot be used, before anything is written. `given`
    ({"sweep": ..., "numerics": ...}, what the fingerprint hashes) lets a refused resume name
    the fields that differ from what config.json recorded."""
    try:
        _check_out_dir(out, resume=resume, print_=print_, given=given)
    except OSError as err:  # the path itself: too long, in /proc, unreadable, ...
        raise SweepDirError(
            f"--out {str(out)!r} cannot be used ({err.strerror or err}): allowed a writable "
            "directory path"
        ) from None


def _check_out_dir(out: Path, *, resume: bool, print_: str, given: dict | None) -> None:
    if out.is_symlink() and not out.exists():
        raise SweepDirError(f"--out {str(out)!r} is a dangling link: allowed a directory path")
    if out.exists() and not out.is_dir():
        raise SweepDirError(f"--out {str(out)!r} is a file: allowed a new or resumable directory")
    if resume:
        config = out / CONFIG
        if not config.is_file():
            raise SweepDirError(
                f"--resume {str(out)!r} has no {CONFIG}: allowed the directory "
                "of an interrupted sweep"
            )
        try:
            recorded = json.loads(config.read_text())
            previous = recorded["fingerprint"]
        except (ValueError, KeyError, TypeError, OSError) as err:
            raise SweepDirError(f"--resume {str(out)!r}: {CONFIG} is unreadable ({err})") from None
        if (out / STAGES_DIR).exists() and not (out / STAGES_DIR).is_dir():
            raise SweepDirError(
                f"--resume {str(out)!r}: {STAGES_DIR} is not a directory: allowed the layout a "
                "sweep writes (move the file away, then resume)"
            )
        if previous != print_:
            diffs = differences(recorded, given) if given is not None else []
            what = "; ".join(diffs[:3]) + (f"; and {len(diffs) - 3} more" if len(diffs) > 3 else "")
            raise SweepDirError(
                f"--resume {str(out)!r} was written by a different sweep "
                f"({what or f'fingerprint {previous} != {print_}'}): allowed the recorded "
                "settings (--resume --out DIR alone resumes them as recorded)"
            )
        return
    if out.exists() and any(out.iterdir()):
        raise SweepDirError(
            f"--out {str(out)!r} exists and is not empty: allowed a new "
            "directory, or --resume to finish that sweep"
        )
    ancestor = out.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise SweepDirError(
            f"--out {str(out)!r} is not writable ({str(ancestor)!r} is not a "
            "writable directory): allowed a writable path"
        )
    os.rmdir(tempfile.mkdtemp(prefix=".noisyjax-probe-", dir=ancestor))  # mkdir works there


def differences(recorded: dict, given: dict) -> list[str]:
    """The fields where `given` ({"sweep": ..., "numerics": ...}) differs from a config.json,
    as "field: recorded X, given Y" (the recorded numerics only where config.json has them)."""
    given = json.loads(json.dumps(given))  # tuples as lists, as the file has them
    out = []

    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                walk(a.get(key), b.get(key), f"{path}.{key}" if path else key)
        elif a != b:
            out.append(f"{path.split('.', 1)[-1]}: recorded {a!r}, given {b!r}")

    walk(recorded.get("sweep"), given.get("sweep"), "sweep")
    if "numerics" in recorded:
        walk(recorded["numerics"], given.get("numerics"), "numerics")
    return out


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
    programs: dict | None = None,
) -> xr.Dataset:
    """Run every chunk of `plan` that `out` does not hold yet, then write results and figures.

    In a multi-process run every process calls this; each runs its share of the chunks and
    process 0 writes all files. `programs` keeps compiled programs for later calls
    (`run_chunks`).
    """
    run = functools.partial(run_chunks, programs=programs)
    out = Path(out)
    print_ = fingerprint(plan.sweep, numerics(plan))
    lead = jax.process_index() == 0
    if not lead:
        for _ in distributed.share(plan, _todo(plan, None), run, Timing()):
            pass
        return xr.Dataset()
    given = {"sweep": plan.sweep.to_dict(), "numerics": numerics(plan)}
    check_out_dir(out, resume=resume, print_=print_, given=given)
    out.mkdir(parents=True, exist_ok=True)
    with writer_lock(out):
        check_out_dir(out, resume=resume, print_=print_, given=given)  # again, now it is ours
        return _run_locked(
            plan, out, print_, run, resume=resume, figures=figures, progress=progress
        )


def _todo(plan: Plan, done: np.ndarray | None) -> np.ndarray:
    """The runs still to do, as process 0 decided them (broadcast to every process)."""
    done = np.zeros(plan.table.n_runs, bool) if done is None else done
    return np.flatnonzero(~np.array(distributed.broadcast(done)))


def _run_locked(
    plan: Plan,
    out: Path,
    print_: str,
    run: Callable,
    *,
    resume: bool,
    figures: Figures | None,
    progress: bool,
) -> xr.Dataset:
    """`run_sweep` on process 0, holding the directory's lock."""
    sweep, table = plan.sweep, plan.table
    header = {
        "fingerprint": print_,
        "sweep": sweep.to_dict(),
        "numerics": numerics(plan),
        "plan": plan.summary(),
        "environment": environment(),
        "status": "running",
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "writer": {
            "pid": os.getpid(),
            "host": platform.node(),
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
    }
    done = np.zeros(table.n_runs, bool)
    metrics: dict[str, np.ndarray] = {}
    mngr = store.manager(out, sweep.experiment.stages)
    if resume:
        for stray in out.glob(".*.tmp"):
            stray.unlink()  # a write that was cut off: never read, removed
        done, metrics = store.read_chunks(mngr, print_, table.n_runs, verify=True)
    write_json(out / CONFIG, header)
    todo = _todo(plan, done)
    timing = Timing()
    try:
        with tqdm(
            total=len(todo), unit="run", desc=sweep.name, disable=not progress, dynamic_ncols=True
        ) as bar:
            bar.set_postfix_str("compiling", refresh=True)  # the first chunk compiles first
            for runs_C, chunk, snapshots in distributed.share(plan, todo, run, timing):
                store.save_chunk(mngr, runs_C, chunk, snapshots, chunk_meta(plan, runs_C, chunk))
                faults.reach("checkpoint")
                for k, v in chunk.items():
                    if k not in metrics:
                        metrics[k] = np.zeros((table.n_runs,) + v.shape[1:], v.dtype)
                    metrics[k][runs_C] = v
                done[runs_C] = True
                bar.set_postfix_str("", refresh=False)
                bar.update(len(runs_C))
                raise_received()
    except (KeyboardInterrupt, Terminated) as err:
        mngr.wait_until_finished()  # what was queued is committed: resume keeps it
        stored = len(store.saved_runs(mngr))
        mngr.close()
        name = "SIGINT" if isinstance(err, KeyboardInterrupt) else "SIGTERM"
        raise SweepInterrupted(out, stored, plan.n_chunks, name) from None
    mngr.wait_until_finished()  # every chunk is on disk before results are declared
    stored = np.zeros(table.n_runs, bool)
    for runs in store.saved_runs(mngr).values():
        stored[runs] = True
    mngr.close()
    if not (done & stored).all():
        raise SweepDirError(
            f"sweep {str(out)!r} is missing {int((~(done & stored)).sum())} runs after "
            "running: rerun with --resume"
        )
    del header["writer"]
    header.update(
        status="complete",
        timing={"compile_s": timing.compile_s, "run_s": timing.run_s},
        **({"xla_bytes": timing.xla_bytes} if timing.xla_bytes else {}),
    )
    ds = store.to_dataset(
        sweep,
        table,
        metrics,
        {"fingerprint": print_, "sweep": sweep.to_dict(), **header["environment"]},
    )
    store.write_dataset(ds, out / RESULTS)
    header["results_sha256"] = store.file_checksum(out / RESULTS)  # `load_sweep` checks it
    # What every later reader sees: figures read the file back; otherwise the same decoding is
    # applied in memory (a test keeps the two identical).
    ds = store.read_dataset(out / RESULTS) if figures is not None else store.as_read(ds)
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


def chunk_meta(plan: Plan, runs_C: np.ndarray, metrics: dict[str, np.ndarray]) -> dict:
    """The sweep's fingerprint, and the grid coordinates and stage times of a chunk's runs,
    stored in its meta item."""
    sweep, table = plan.sweep, plan.table
    cells = np.unravel_index(runs_C, sweep.shape)
    coords = {axis.name: [axis.values[i] for i in cells[k]] for k, axis in enumerate(sweep.axes)}
    coords["seed"] = [int(table.seed[r]) for r in runs_C]
    names = [t for t in sweep.experiment.stages if t in metrics]
    times = {t: [int(v) for v in metrics[t]] for t in names}
    return {
        "fingerprint": fingerprint(sweep, numerics(plan)),
        "coords": coords,
        "stage_times": times,
    }


def default_out(sweep: Sweep, root: Path = Path("checkpoints")) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return root / f"{sweep.name}-{stamp}"
