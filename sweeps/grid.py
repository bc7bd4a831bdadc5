"""`python -m sweeps.grid`: run a phase-diagram sweep from a preset, with overrides.

Examples:
  python -m sweeps.grid                                   # the default preset
  python -m sweeps.grid --list-presets
  python -m sweeps.grid --preset stage-phase --axis tau=lin:0:0.4:9 --seeds 5 --dry-run
  python -m sweeps.grid --set steps=1000 --set eta=0.1 --out checkpoints/mine
  python -m sweeps.grid --out checkpoints/mine --resume   # finish an interrupted sweep (as
                                                          # config.json recorded it)

Bad input prints one line naming the problem and exits with status 2, writing nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import signal
import sys
from pathlib import Path
from typing import NoReturn

from noisyjax.config import ENGINES, ConfigError, fail
from noisyjax.sweep import Sweep, SweepDirError, parse_axis
from sweeps.overrides import apply_sets, check_heatmap_vars, parse_heatmap, parse_size

EXIT_USAGE = 2
EXIT_SIGINT, EXIT_SIGTERM = 130, 143  # 128 + the signal's number, as shells report them


class UsageError(Exception):
    """A command-line problem: reported on one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        raise UsageError(message)


def out_path(text: str) -> Path:
    """--out: a non-empty path (an empty one would be the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("'' is invalid: allowed a directory path")
    return Path(text)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m sweeps.grid",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--preset", default=None, help="preset name (default: the default preset)")
    p.add_argument("--list-presets", action="store_true", help="list presets and exit")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a Config or HParams field (tau sets tau_plus and tau_minus)",
    )
    p.add_argument(
        "--axis",
        action="append",
        default=[],
        metavar="FIELD=SPEC",
        help="add or replace an axis: a,b,c | lin:A:B:N | log:A:B:N | range:A:B:STEP",
    )
    p.add_argument(
        "--drop-axis",
        action="append",
        default=[],
        metavar="FIELD",
        help="remove one of the preset's axes (its field keeps the base value, which --set "
        "may change)",
    )
    p.add_argument("--seeds", type=int, default=None, help="seeds per grid cell")
    p.add_argument(
        "--out",
        type=out_path,
        default=None,
        help="sweep directory (default checkpoints/<preset>-<timestamp>)",
    )
    p.add_argument("--resume", action="store_true", help="finish the sweep in --out")
    p.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default=None,
        help="how steps are computed (default: the preset's; see docs/engines.md)",
    )
    p.add_argument(
        "--max-memory",
        default=None,
        metavar="SIZE",
        help="memory budget of the runs in flight at once (vectorized runs and a "
        "chunk's outputs), e.g. 2G or 512M (default: from the devices)",
    )
    p.add_argument(
        "--chunk-runs",
        type=int,
        default=None,
        metavar="N",
        help="runs per chunk (overrides the memory budget)",
    )
    p.add_argument(
        "--vector-runs",
        type=int,
        default=None,
        metavar="V",
        help="runs vectorized together inside a chunk (default: 8 on CPU, up to 256 "
        "on accelerators, lowered to fit the memory budget)",
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="multi-process run: call jax.distributed.initialize() first (no "
        "arguments needed on a TPU pod or a detected cluster)",
    )
    p.add_argument(
        "--coordinator",
        default=None,
        metavar="HOST:PORT",
        help="with --distributed: coordinator address (process 0's host)",
    )
    p.add_argument(
        "--num-processes",
        type=int,
        default=None,
        metavar="P",
        help="with --distributed: number of processes",
    )
    p.add_argument(
        "--process-id",
        type=int,
        default=None,
        metavar="I",
        help="with --distributed: this process's index",
    )
    p.add_argument(
        "--matmul-precision",
        default=None,
        choices=("default", "high", "highest"),
        help="jax_default_matmul_precision (default: highest on TPU)",
    )
    p.add_argument(
        "--heatmap",
        action="append",
        default=[],
        metavar="VAR[:X:Y]",
        help="also draw a heatmap of a per-run variable (a stage time such as t1, a "
        "transition metric such as t1_train_acc_noisy, or a trajectory's last "
        "value) over axes X and Y (default: the first two axes)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def resolve(args: argparse.Namespace) -> tuple[Sweep, object, list[str]]:
    """The sweep, figure function and heatmap variables the arguments describe (validated)."""
    from sweeps.presets import DEFAULT, PRESETS, on_preset_axes, with_heatmaps

    stored = recorded_sweep(args)
    if stored is not None:  # --resume with nothing else: the sweep config.json recorded
        sweep = Sweep.from_dict(stored["sweep"])
        if sweep.name not in PRESETS:  # made in Python: resumed without the preset's figures
            return sweep, None, []
        preset_sweep, figures = PRESETS[sweep.name]()
        return sweep, on_preset_axes(figures, tuple(a.name for a in preset_sweep.axes)), []
    name = DEFAULT if args.preset is None else args.preset
    if name not in PRESETS:
        fail("--preset", name, "one of " + ", ".join(sorted(PRESETS)))
    sweep, figures = PRESETS[name]()
    figures = on_preset_axes(figures, tuple(a.name for a in sweep.axes))
    for name_ in args.drop_axis:
        sweep = sweep.without_axis(name_)
    for spec in args.axis:
        sweep = sweep.with_axis(parse_axis(spec, sweep.experiment))
    sets = list(args.set)
    if args.engine:
        if "engine" not in {f.name for f in dataclasses.fields(sweep.cfg)}:
            fail("--engine", args.engine, f"nothing with {name!r}: its runs have one engine")
        sets.append(f"engine={args.engine}")
    sweep = apply_sets(sweep, sets)
    if args.seeds is not None:
        sweep = dataclasses.replace(sweep, seeds=args.seeds)
    # After the axes: a heatmap may use an axis added on the command line.
    heatmaps = [parse_heatmap(spec, sweep) for spec in args.heatmap]
    if heatmaps:
        figures = with_heatmaps(figures, heatmaps)
    return sweep, figures, [var for var, _, _ in heatmaps]


def recorded_sweep(args: argparse.Namespace) -> dict | None:
    """config.json of the sweep to resume, when --resume is given without any option that
    defines a sweep (then the recorded one is resumed as it was); None otherwise."""
    defining = (args.preset, args.axis, args.drop_axis, args.set, args.seeds, args.engine)
    defining += (args.heatmap,)
    if not args.resume or args.out is None or any(defining):
        return None
    try:
        return json.loads((args.out / "config.json").read_text())
    except (OSError, ValueError):
        return None  # the runner refuses such a directory, in one line


def main(argv: list[str] | None = None, *, cpu_cores_as_devices: bool = False) -> int:
    """The CLI. `cpu_cores_as_devices` (set when run as a program, not when called from Python
    code, where changing JAX's device count would leak into the caller) makes every CPU core a
    JAX device before JAX starts (`noisyjax.sweep.distributed.use_cpu_cores`)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.argv = sys.argv[1:] if argv is None else list(argv)  # for the resume hint
        if args.list_presets:
            from sweeps.presets import PRESETS, describe

            width = max(map(len, PRESETS))
            for name in PRESETS:
                print(f"{name:<{width}}  {describe(name)}")
            return 0
        if args.resume and args.out is None:
            raise UsageError("--resume needs --out DIR: the directory of the sweep to finish")
        cluster = (args.coordinator, args.num_processes, args.process_id)
        if not args.distributed and any(v is not None for v in cluster):
            raise UsageError("--coordinator, --num-processes and --process-id need --distributed")
        if args.num_processes is not None and args.num_processes < 1:
            fail("--num-processes", args.num_processes, "an integer >= 1")
        if args.process_id is not None and not (
            0 <= args.process_id < (args.num_processes or args.process_id + 1)
        ):
            fail("--process-id", args.process_id, "an integer in [0, --num-processes)")
        for flag, value in (
            ("--chunk-runs", args.chunk_runs),
            ("--vector-runs", args.vector_runs),
            ("--seeds", args.seeds),
        ):
            if value is not None and value < 1:
                fail(flag, value, "an integer >= 1")
        max_memory = parse_size(args.max_memory) if args.max_memory is not None else None
        sweep, figures, heatmap_vars = resolve(args)
        return execute(
            args,
            sweep,
            figures,
            max_memory,
            heatmap_vars=heatmap_vars,
            cpu_cores_as_devices=cpu_cores_as_devices,
        )
    except (UsageError, ConfigError, SweepDirError) as err:
        print(f"sweeps.grid: error: {err}", file=sys.stderr)
        return EXIT_USAGE


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
    if not args.distributed:
        use_compile_cache(jax)
    if getattr(sweep.cfg, "dtype", "float32") == "float64":
        jax.config.update("jax_enable_x64", True)
    precision = args.matmul_precision or ("highest" if jax.default_backend() == "tpu" else None)
    if precision and precision != "default":
        jax.config.update("jax_default_matmul_precision", precision)
    vector_runs = args.vector_runs
    stored = recorded_sweep(args) if args.resume else None
    if vector_runs is None and stored is not None:  # the widths decide the rounding: keep them
        widths = {b["vector_runs"] for b in stored.get("plan", {}).get("buckets", [])}
        vector_runs = widths.pop() if len(widths) == 1 else None
    plan_ = plan(sweep, max_memory=max_memory, chunk_runs=args.chunk_runs, vector_runs=vector_runs)
    if heatmap_vars:  # the outputs of the planned program, traced (not compiled or run)
        outputs = set(chunk_template(plan_, plan_.buckets[0])[0]) - {sweep.experiment.time}
        check_heatmap_vars(heatmap_vars, outputs)
    out = args.out if args.out is not None else default_out(sweep)
    if args.dry_run:
        check_out_dir(out, resume=args.resume, print_=fingerprint(sweep, numerics(plan_)))
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
    from noisyjax.sweep.runner import SweepInterrupted, Terminated

    def terminate(signum, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        run_sweep(
            plan_,
            out,
            resume=args.resume,
            figures=figures,
            progress=not args.no_progress,
        )
    except SweepDirError as err:
        print(f"sweeps.grid: error: {err}", file=sys.stderr)
        return _exit_now(EXIT_USAGE) if args.distributed else EXIT_USAGE
    except SweepInterrupted as err:
        again = resume_command(args.argv, out)
        print(f"sweeps.grid: {err}; finish with: {again}", file=sys.stderr)
        code = EXIT_SIGINT if err.signal_name == "SIGINT" else EXIT_SIGTERM
        return _exit_now(code) if args.distributed else code
    except OSError as err:  # the file system: a full disk, a vanished or read-only directory
        where = f" ({err.filename})" if err.filename else ""
        print(
            f"sweeps.grid: error: {err.strerror or err}{where}; every stored chunk is kept: "
            f"finish with: {resume_command(args.argv, out)}",
            file=sys.stderr,
        )
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
        signal.signal(signal.SIGTERM, previous)
    if jax.process_index() == 0:
        print(f"wrote {out}")
    distributed.shutdown()
    return 0


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


if __name__ == "__main__":
    sys.exit(main(cpu_cores_as_devices=True))
