"""The command line of `python -m sweeps.grid` (also `noisyjax` and `python -m noisyjax`):
arguments, the sweep they describe, and the post-hoc tools. `sweeps.grid` is its entry point.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import NoReturn

from noisyjax.errors import ConfigError, fail
from noisyjax.sweep import Sweep, SweepDirError, parse_axis
from sweeps.exits import EXIT_USAGE, UsageError, package_version
from sweeps.overrides import apply_sets, parse_heatmap, parse_size

USAGE = """Run a phase-diagram sweep from a preset, with overrides.

Examples:
  python -m sweeps.grid                                   # the default preset
  python -m sweeps.grid --list-presets
  python -m sweeps.grid --preset stage-phase --axis tau=lin:0:0.4:9 --seeds 5 --dry-run
  python -m sweeps.grid --preset tiny --no-axis n_snr2 --set mu_norm=7 --out checkpoints/mine
  python -m sweeps.grid --out checkpoints/mine --resume   # finish an interrupted sweep (as
                                                          # config.json recorded it)
  python -m sweeps.grid --replot checkpoints/mine         # redraw its figures (no training)
  python -m sweeps.grid --summary checkpoints/mine        # seed means and 95% intervals
  python -m sweeps.grid --preset my_presets.py:my_sweep   # a preset of your own
  python -m sweeps.grid --preset stage1-boundary --refine-rounds 6   # a boundary, bisected

`noisyjax ...` and `python -m noisyjax ...` are the same command.

Bad input prints one line naming the problem and exits with status 2, writing nothing.
"""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage dump
        raise UsageError(message)

    def format_help(self) -> str:
        """The options, then the presets and every --set field (read from the code that
        checks them, so the help cannot drift from what is accepted)."""
        from sweeps.overrides import field_help
        from sweeps.presets import DEFAULT, PRESETS, describe

        width = max(map(len, PRESETS))
        lines = [f"presets (default: {DEFAULT}):"]
        lines += [f"  {name:<{width}}  {describe(name)}" for name in PRESETS]
        lines += ["  FILE.py:FUNCTION" + " " * max(width - 16, 0) + "  a preset of your own"]
        for name in (DEFAULT, "real-digits"):
            sweep, _ = PRESETS[name]()
            lines += ["", f"--set fields of {name}'s experiment ({sweep.experiment.name}):"]
            lines += ["  " + row for row in field_help(sweep)]
        return super().format_help() + "\n" + "\n".join(lines) + "\n"


def out_path(text: str) -> Path:
    """--out: a non-empty path (an empty one would be the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("'' is invalid: allowed a directory path")
    return Path(text)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m sweeps.grid",
        description=USAGE.splitlines()[0],
        epilog="\n".join(USAGE.splitlines()[2:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--preset",
        default=None,
        help="a preset name (listed below; default: stage-phase), or FILE.py:FUNCTION for a "
        "function of your own that returns a Sweep (docs/sweeps.md)",
    )
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
        "--no-axis",
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
        default=None,
        metavar="ENGINE",
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
    p.add_argument(
        "--refine",
        default=None,
        metavar="VAR:THRESHOLD:AXIS",
        help="locate, for every cell of the other axes, the AXIS value where the seed mean of "
        "VAR crosses THRESHOLD: bracket it on the grid, then bisect (docs/refine.md); "
        "append :lin or :log to choose how brackets are halved",
    )
    p.add_argument(
        "--refine-rounds",
        type=int,
        default=None,
        metavar="R",
        help="bisection rounds of --refine (default 4)",
    )
    p.add_argument(
        "--refine-tol",
        type=float,
        default=None,
        metavar="WIDTH",
        help="stop refining a cell once its bracket is at most WIDTH wide (AXIS's units)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--replot",
        default=None,
        metavar="DIR",
        type=out_path,
        help="redraw the figures of the finished sweep in DIR from its results.nc (no training)",
    )
    p.add_argument(
        "--summary",
        default=None,
        metavar="DIR",
        type=out_path,
        help="print, and write to DIR/summary.csv, the seed mean and 95%% interval of every "
        "per-run output of the finished sweep in DIR, per grid cell",
    )
    p.add_argument("--version", action="version", version=f"noisyjax {package_version()}")
    return p


def resolve(args: argparse.Namespace) -> tuple[Sweep, object, list[str]]:
    """The sweep, figure function and heatmap variables the arguments describe (validated)."""
    from sweeps.presets import DEFAULT, PRESETS, load, on_preset_axes, with_heatmaps

    stored = recorded_sweep(args)
    if stored is not None:  # --resume with nothing else: the sweep config.json recorded
        sweep = Sweep.from_dict(stored["sweep"])
        if sweep.name not in PRESETS:  # made in Python: resumed without the preset's figures
            return sweep, None, []
        preset_sweep, figures = PRESETS[sweep.name]()
        return sweep, on_preset_axes(figures, tuple(a.name for a in preset_sweep.axes)), []
    name = DEFAULT if args.preset is None else args.preset
    sweep, figures = load(name)
    if figures is not None:
        figures = on_preset_axes(figures, tuple(a.name for a in sweep.axes))
    for name_ in args.no_axis:
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
    sweep = with_refine(sweep, args)
    # After the axes: a heatmap may use an axis added on the command line.
    heatmaps = [parse_heatmap(spec, sweep) for spec in args.heatmap]
    if heatmaps:
        figures = with_heatmaps(figures or (lambda ds, out: []), heatmaps)
    return sweep, figures, [var for var, _, _ in heatmaps]


def with_refine(sweep: Sweep, args: argparse.Namespace) -> Sweep:
    """The sweep with --refine's rule (or the preset's), --refine-rounds and --refine-tol."""
    from noisyjax.sweep.spec import parse_refine

    options = {
        k: v for k, v in (("rounds", args.refine_rounds), ("tol", args.refine_tol)) if v is not None
    }
    if args.refine is not None:
        return dataclasses.replace(sweep, refine=parse_refine(args.refine, **options))
    if options:
        if sweep.refine is None:
            flag = "--refine-rounds" if "rounds" in options else "--refine-tol"
            fail(flag, next(iter(options.values())), "with --refine, or a refining preset")
        return dataclasses.replace(sweep, refine=dataclasses.replace(sweep.refine, **options))
    return sweep


def recorded_sweep(args: argparse.Namespace) -> dict | None:
    """config.json of the sweep to resume, when --resume is given without any option that
    defines a sweep (then the recorded one is resumed as it was); None otherwise."""
    defining = (args.preset, args.axis, args.no_axis, args.set, args.seeds, args.engine)
    defining += (args.heatmap, args.refine, args.refine_rounds, args.refine_tol)
    if not args.resume or args.out is None or any(defining):
        return None
    try:
        return json.loads((args.out / "config.json").read_text())
    except (OSError, ValueError):
        return None  # the runner refuses such a directory, in one line


def run(argv: list[str] | None = None, *, cpu_cores_as_devices: bool = False) -> int:
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
        posthoc = [flag for flag in ("replot", "summary") if getattr(args, flag) is not None]
        if posthoc:
            from sweeps import posthoc as tools

            if len(posthoc) > 1 or args.resume or args.dry_run:
                raise UsageError("--replot and --summary go alone (with the sweep's DIR)")
            return getattr(tools, posthoc[0])(getattr(args, posthoc[0]))
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
        from sweeps.launch import execute

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
