"""Launching a resolved sweep: JAX's start (devices, compilation cache, precision), the plan,
the run with its signal and file-system endings, and the lines that report them."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import platform
import re
import shlex
import signal
import sys
from pathlib import Path
from typing import NoReturn

from noisyjax.sweep import Sweep, SweepDirError
from sweeps.exits import EXIT_SIGINT, EXIT_SIGTERM, EXIT_USAGE, UsageError
from sweeps.overrides import check_heatmap_vars


def execute(
    args: argparse.Namespace,
    sweep: Sweep,
    figures,
    max_memory: int | None,
    *,
    heatmap_vars: list[str] = (),
    cpu_cores_as_devices: bool = False,
) -> int:
    import jax

    from noisyjax.sweep import distributed, plan
    from noisyjax.sweep.execute import chunk_template
    from noisyjax.sweep.runner import check_out_dir, default_out, numerics, run_sweep
    from noisyjax.sweep.store import fingerprint

    if sweep.refine is not None and args.distributed:
        raise UsageError("--refine runs in one process: not with --distributed")
    # Before the first JAX operation; only CPU devices. Not with --distributed: the processes of
    # a cluster must plan the same chunks, so they keep JAX's default device count.
    if cpu_cores_as_devices and not args.distributed:
        distributed.use_cpu_cores()
    if args.distributed:
        try:
            distributed.initialize(
                coordinator_address=args.coordinator,
                num_processes=args.num_processes,
                process_id=args.process_id,
            )
        except (ValueError, RuntimeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UsageError(f"--distributed: jax.distributed.initialize failed: {first}") from None
    try:  # JAX starts its backends here: a platform it cannot start ends in one line
        jax.devices()
    except (RuntimeError, ValueError, AssertionError) as err:
        chosen = os.environ.get("JAX_PLATFORMS")
        first = (str(err).strip().splitlines() or ["no backend could be started"])[0]
        where = f" JAX_PLATFORMS={chosen!r}" if chosen else ""
        raise UsageError(f"JAX cannot start{where}: {first}") from None
    if not args.distributed:
        use_compile_cache(jax)
    if getattr(sweep.cfg, "dtype", "float32") == "float64":
        jax.config.update("jax_enable_x64", True)
    precision = args.matmul_precision or ("highest" if jax.default_backend() == "tpu" else None)
    if precision and precision != "default":
        jax.config.update("jax_default_matmul_precision", precision)
    vector_runs = args.vector_runs
    from sweeps.cli import recorded_sweep

    stored = recorded_sweep(args) if args.resume else None
    if vector_runs is None and stored is not None:  # the widths decide the rounding: keep them
        widths = {b["vector_runs"] for b in stored.get("plan", {}).get("buckets", [])}
        vector_runs = widths.pop() if len(widths) == 1 else None
    plan_ = plan(sweep, max_memory=max_memory, chunk_runs=args.chunk_runs, vector_runs=vector_runs)
    if sweep.refine is not None:  # VAR and THRESHOLD against the planned program's outputs
        from noisyjax.sweep.refine import check_plan, coarse_plan

        plan_ = coarse_plan(plan_, args.chunk_runs)  # chunked as its rounds will be
        check_plan(plan_)
    if heatmap_vars:  # the outputs of the planned program, traced (not compiled or run)
        outputs = set(chunk_template(plan_, plan_.buckets[0])[0]) - {sweep.experiment.time}
        check_heatmap_vars(heatmap_vars, outputs)
    out = args.out if args.out is not None else default_out(sweep)
    given = {"sweep": sweep.to_dict(), "numerics": numerics(plan_)}
    check_out_dir(
        out, resume=args.resume, print_=fingerprint(sweep, given["numerics"]), given=given
    )
    if jax.process_index() == 0:
        print(plan_line(sweep, plan_), file=sys.stderr)
        if sweep.refine is not None:
            print(refine_line(sweep), file=sys.stderr)
    if args.dry_run:
        print(
            json.dumps(
                {
                    "preset": sweep.name,
                    "out": str(out),
                    "dims": sweep.dims,
                    "shape": sweep.shape,
                    **plan_.summary(),
                },
                indent=2,
            )
        )
        return 0
    from noisyjax.sweep import runner
    from noisyjax.sweep.runner import CONFIG, SweepInterrupted, Terminated

    def on_signal(signum, frame):
        # Kept as well as raised: a signal whose exception lands in a finalizer is raised
        # again at the next chunk boundary, or below once the sweep is done.
        name = signal.Signals(signum).name
        runner.received.append(name)
        raise runner.signal_error(name)

    runner.received.clear()
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    # Orbax logs a failed background write (with its traceback) through absl before the error
    # reaches us; the command line reports it in one line instead.
    absl = logging.getLogger("absl")
    absl_level = absl.level
    absl.setLevel(logging.CRITICAL)
    try:
        if sweep.refine is not None:
            from noisyjax.sweep.refine import run_refined

            run_refined(
                plan_,
                out,
                resume=args.resume,
                figures=figures,
                progress=not args.no_progress,
                chunk_runs=args.chunk_runs,
            )
        else:
            run_sweep(
                plan_,
                out,
                resume=args.resume,
                figures=figures,
                progress=not args.no_progress,
            )
        runner.raise_received()
    except SweepDirError as err:
        print(f"sweeps.grid: error: {err}", file=sys.stderr)
        return _exit_now(EXIT_USAGE) if args.distributed else EXIT_USAGE
    except SweepInterrupted as err:
        again = resume_command(args.argv, out)
        print(f"sweeps.grid: {err}; finish with: {again}", file=sys.stderr)
        code = EXIT_SIGINT if err.signal_name == "SIGINT" else EXIT_SIGTERM
        return _exit_now(code) if args.distributed else code
    except (KeyboardInterrupt, Terminated) as err:  # outside the chunk loop: in the figures
        name, code = (
            ("SIGINT", EXIT_SIGINT)
            if isinstance(err, KeyboardInterrupt)
            else ("SIGTERM", EXIT_SIGTERM)
        )
        if status_of(out / CONFIG) == "complete":
            then = f"the results are complete: redraw the figures with: {replot_command(out)}"
        else:
            then = f"finish with: {resume_command(args.argv, out)}"
        print(f"sweeps.grid: interrupted ({name}); {then}", file=sys.stderr)
        return _exit_now(code) if args.distributed else code
    except (OSError, ValueError) as err:  # the file system: a full disk, a read-only directory
        if isinstance(err, ValueError) and not disk_full(err):
            raise
        if isinstance(err, ValueError):  # tensorstore's RESOURCE_EXHAUSTED from an Orbax write
            err = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), disk_full(err))
        where = f" ({err.filename})" if err.filename else ""
        if (out / CONFIG).is_file():
            then = f"every stored chunk is kept: finish with: {resume_command(args.argv, out)}"
        else:
            then = "nothing was stored"
        print(f"sweeps.grid: error: {err.strerror or err}{where}; {then}", file=sys.stderr)
        return _exit_now(1) if args.distributed else 1
    except BaseException:
        if not args.distributed:
            raise
        # A process that fails mid-sweep must die at once, or the others wait in a collective
        # and JAX's shutdown barrier keeps this one alive.
        import traceback

        traceback.print_exc()
        _exit_now(1)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        absl.setLevel(absl_level)
    if jax.process_index() == 0:
        print(f"wrote {out}")
    distributed.shutdown()
    return 0


def plan_line(sweep: Sweep, plan_) -> str:
    """One line that shows what a sweep will cost before it costs it: the grid, the runs, the
    peak memory of a chunk against the budget, and the disk its stage snapshots take."""
    summary = plan_.summary()
    dims = " x ".join(f"{d} {n}" for d, n in zip(sweep.dims, sweep.shape, strict=True))
    peak = max(b["bytes_per_chunk"] for b in summary["buckets"])
    return (
        f"{sweep.name}: {dims} = {summary['runs']:,} runs in {summary['chunks']} chunks on "
        f"{summary['devices']} devices; memory ~{size(peak)} of {size(plan_.max_memory)}, "
        f"disk ~{size(summary['snapshot_bytes'])} of stage snapshots"
    )


def refine_line(sweep: Sweep) -> str:
    """What a refinement adds to the coarse grid, at most."""
    from noisyjax.sweep.refine import cells_of

    rule = sweep.refine
    cells = len(cells_of(sweep))
    most = rule.rounds * cells * sweep.seeds
    return (
        f"refine: where the seed mean of {rule.var} crosses {rule.threshold:g} along "
        f"{rule.axis}, {cells:,} cells; then at most {rule.rounds} rounds of {cells:,} probes x "
        f"{sweep.seeds} seeds = {most:,} more runs"
    )


def size(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.3g} {unit}"
        nbytes /= 1024
    raise AssertionError


def use_compile_cache(jax) -> None:
    """JAX's persistent compilation cache, so a program compiled once (a preset, a test) is
    loaded, not compiled, the next time: in $NOISYJAX_COMPILE_CACHE, default
    ~/.cache/noisyjax/xla/<host> (one per host: executables are built for its CPU); set it to
    "" to switch it off. A cached program is the same executable, so results do not change.
    A cache the user configured for JAX (JAX_COMPILATION_CACHE_DIR) is left as it is."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir:
        return
    default = Path.home() / ".cache" / "noisyjax" / "xla" / platform.node()
    directory = os.environ.get("NOISYJAX_COMPILE_CACHE", str(default))
    if directory:
        jax.config.update("jax_compilation_cache_dir", directory)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def disk_full(err: BaseException) -> str | None:
    """The path of a write that failed for want of space, when `err` says so (Orbax's writes
    fail with tensorstore's RESOURCE_EXHAUSTED, a ValueError, not an OSError); else None."""
    text = str(err)
    if "No space left on device" not in text:
        return None
    found = re.search(r'Failed writing: "([^"]+)"', text)
    return found.group(1) if found else "?"


def status_of(config: Path) -> str | None:
    """The status config.json records ("running", "complete"), None if there is none."""
    try:
        return json.loads(config.read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def replot_command(out: Path) -> str:
    return f"python -m sweeps.grid --replot {shlex.quote(str(out))}"


def resume_command(argv: list[str], out: Path) -> str:
    """The command that finishes an interrupted sweep: the same arguments, with --out and
    --resume."""
    words, skip = [], False
    for word in argv:
        if skip:
            skip = False
            continue
        if word == "--out":
            skip = True
            continue
        if word.startswith("--out=") or word == "--resume":
            continue
        words.append(word)
    return " ".join(
        [
            "python -m sweeps.grid",
            *map(shlex.quote, words),
            "--out",
            shlex.quote(str(out)),
            "--resume",
        ]
    )


def _exit_now(code: int) -> NoReturn:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
