"""Runs per second against vector width on one device: the vmapped sweep program vs. one run a call.

On whatever device JAX sees first (a CPU here; a GPU or a TPU elsewhere), two settings:

  paper  the `paper-fig1` preset's Config (n=200, d=2000, m=20, n_test=1000, dense engine, test
         error every step), shortened to `--paper-steps` steps logged every 10.
  kou    the `kou2023-grid` preset's Config (Kou et al. 2023: n=20, m=10, n_test=1000, torch
         init, bias, engine "auto", which resolves to wishart) at its compiled d = 1090 (the
         grid's largest d, to which the preset pads every run), `--kou-steps` steps.

For each vector width V (powers of two, `--widths`), the program is the sweep engine's own chunk
program: `noisyjax.plan(sweep, vector_runs=V, chunk_runs=V)` on that one device, then
`noisyjax.sweep.execute.make_chunk_fn` (`jax.jit(jax.vmap(...))` over `lax.map` groups of V runs,
one group here): V runs vmapped in one call. It is lowered and compiled explicitly (compile time
reported apart), called once as a warm-up, then timed over `--repeats` calls (more until
`--min-time` seconds have passed), each call blocked on (`jax.block_until_ready`; results stay on
the device). runs/s = V / median call time; the best (shortest) call is kept too, the one least
disturbed by other processes on a shared machine.

The baseline is the same runs one at a time on the same device: the experiment's per-run function
(`make_run`, the function the chunk program vmaps) jitted alone, called in a Python loop over
`--seq-runs` distinct runs (in turn again until `--min-time`), each call blocked on; runs/s =
1 / median call time (compile and one warm-up call excluded). speedup = vmapped runs/s /
one-at-a-time runs/s; "speedup (best)" divides the two paths' shortest calls.

Memory: XLA's own count for each compiled program (`compiled.memory_analysis()`: temp,
argument and output bytes, and their sum), and on a GPU or TPU `device.memory_stats()` after
each width (`peak_bytes_in_use` is the process's peak so far; the widths grow, so it is the
largest width's peak up to the baseline's). A setting stops at the first width whose program XLA
counts above the device's memory (its allocator's limit; half the host RAM on a CPU), that fails
to allocate, or whose estimated time (twice the previous width's calls, plus its compile) would
pass the setting's `--budget` seconds. Whether the planner accepts the width within its default
memory budget (`python -m sweeps.grid` without --max-memory) is recorded, not enforced.

Recommendation (`recommend`): the smallest measured width whose runs/s is at least 90% of the
best measured, with its memory per run (XLA's count / V).

Usage:
  python -m benchmarks.device                           # CPU: widths 8..64, under 2 minutes
  python -m benchmarks.device --out gpu.json            # GPU/TPU: widths 8..4096
  python -m benchmarks.device --widths 8 32 128 --settings kou
  python -m benchmarks.device --quick                   # tiny sizes, 2 widths (tests)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import numpy as np  # noqa: E402

import noisyjax as nj  # noqa: E402
from noisyjax.sweep import Axis, Sweep, execute  # noqa: E402
from noisyjax.sweep.execute import chunk_inputs, make_chunk_fn, run_sharding  # noqa: E402
from noisyjax.sweep.plan import host_memory  # noqa: E402
from sweeps.presets.kou import kou2023_grid  # noqa: E402
from sweeps.presets.paper import paper_fig1  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ("paper", "kou")
THRESHOLD = 0.9  # the recommendation: the smallest width within 10% of the best runs/s
MIB = 2**20


@dataclasses.dataclass(frozen=True)
class Profile:
    """Defaults for one kind of device (every field is a command-line option)."""

    widths: tuple[int, ...]
    paper_steps: int
    kou_steps: int
    seq_runs: int
    repeats: int
    min_time: float
    budget: float


PROFILES = {
    # 2 cores: the whole default run in under 2 minutes, most of it compilation.
    "cpu": Profile((8, 16, 32, 64), 20, 100, 4, 1, 1.0, 50.0),
    "accelerator": Profile(tuple(2**k for k in range(3, 13)), 100, 100, 16, 3, 0.5, 150.0),
    "quick": Profile((4, 8), 10, 10, 2, 1, 0.0, 60.0),
}
# --quick compiles with XLA's backend optimizations off: a check that everything runs, about 4x
# faster to compile on a CPU; its runs/s say nothing about the device.
QUICK_XLA = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


# --- settings ------------------------------------------------------------------------------


def paper_sweep(steps: int, runs: int, quick: bool = False) -> Sweep:
    """`runs` seeds of the paper-fig1 preset's setting (tau = 0.2), `steps` steps logged every 10
    (every `steps` if shorter); `quick`: tiny sizes."""
    preset = paper_fig1()[0]
    cfg = preset.cfg.replace(steps=steps, log_every=min(10, steps))
    if quick:
        cfg = cfg.replace(n=20, d=100, m=4, n_test=100, snapshot_stages=())
    return Sweep("device-paper", cfg, preset.hp, (Axis("tau", (0.2,)),), seeds=runs)


def kou_sweep(steps: int, runs: int, quick: bool = False) -> Sweep:
    """`runs` seeds of the kou2023-grid preset's compiled setting (b = 5 at its largest d)."""
    preset = kou2023_grid()[0]
    cfg = preset.cfg.replace(steps=steps, log_every=steps, eval_every=steps)
    if quick:
        cfg = cfg.replace(d=100, n_test=100)
    return Sweep("device-kou", cfg, preset.hp, (Axis("mu_norm", (5.0,)),), seeds=runs)


def make_sweep(name: str, steps: int, runs: int, quick: bool) -> Sweep:
    return {"paper": paper_sweep, "kou": kou_sweep}[name](steps, runs, quick)


# --- memory --------------------------------------------------------------------------------


def xla_memory(compiled) -> dict[str, int | None]:
    """XLA's count of a compiled program's device memory (the sweep engine's own reading):
    temp, argument, output and total; None each where the backend does not report it."""
    parts = execute.xla_memory(compiled)
    if parts is None:
        return dict.fromkeys(("temp_bytes", "argument_bytes", "output_bytes", "xla_bytes"))
    return {**parts, "xla_bytes": sum(parts.values())}


def device_memory(device: jax.Device) -> dict[str, int | None]:
    """The device's allocator statistics, where it keeps them (GPU, TPU; not the CPU)."""
    try:
        stats = device.memory_stats() or {}
    except Exception:  # noqa: BLE001
        stats = {}
    keys = ("peak_bytes_in_use", "bytes_in_use", "bytes_limit")
    return {k: (int(stats[k]) if k in stats else None) for k in keys}


def memory_limit(device: jax.Device) -> int:
    """The bytes a program may use on `device`: its allocator's limit, or half the host RAM."""
    return device_memory(device)["bytes_limit"] or host_memory() // 2


def out_of_memory(err: Exception) -> bool:
    text = str(err)
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


# --- timing --------------------------------------------------------------------------------


def xla_options(opts) -> dict | None:
    return QUICK_XLA if opts.quick else None


def timed_calls(call, repeats: int, min_time: float) -> list[float]:
    """Seconds of each blocked call: at least `repeats` calls, more until `min_time` has passed
    (at most 100)."""
    times: list[float] = []
    while len(times) < repeats or (sum(times) < min_time and len(times) < 100):
        t0 = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - t0)
    return times


def program_args(plan: nj.Plan, runs: np.ndarray, device: jax.Device):
    """The chunk program's inputs for `runs` (one group of V), placed as `run_chunks` does."""
    bucket = plan.buckets[0]
    args = chunk_inputs(plan.table, runs, plan, bucket, bucket.chunk_runs)
    args = jax.tree.map(lambda a: a.reshape(1, -1), args)
    shared = plan.sweep.experiment.shared(bucket.cfg)
    return jax.device_put(args, run_sharding([device])), jax.device_put(shared, device)


def sequential(name: str, steps: int, runs: int, quick: bool, device: jax.Device, opts) -> dict:
    """The same runs one at a time: the per-run function jitted alone, in a Python loop."""
    plan = nj.plan(make_sweep(name, steps, runs, quick), devices=[device])
    exp, bucket = plan.sweep.experiment, plan.buckets[0]
    inputs = [
        jax.device_put(exp.inputs(plan.table, np.array([i]), bucket.cfg), device)
        for i in range(runs)
    ]
    inputs = [jax.tree.map(lambda a: a[0], x) for x in inputs]  # 0-d: one run, no batch axis
    shared = jax.device_put(exp.shared(bucket.cfg), device)
    compiled, compile_s = compile_timed(jax.jit(exp.make_run(bucket.cfg)), opts, inputs[0], shared)
    jax.block_until_ready(compiled(inputs[0], shared))  # warm-up
    calls = iter(inputs * 100)  # the runs in turn, again until `min_time` has passed
    times = timed_calls(lambda: compiled(next(calls), shared), runs, opts.min_time)
    s_per_run = statistics.median(times)
    return {
        "runs": runs,
        "calls": len(times),
        "compile_s": compile_s,
        "call_s": times,
        "s_per_run": s_per_run,
        "runs_per_s": 1 / s_per_run,
        "runs_per_s_best": 1 / min(times),
        **xla_memory(compiled),
        **device_memory(device),
        "engine": bucket.cfg.step_engine,
    }


def compile_timed(jitted, opts, *args):
    """The compiled program of a jitted function for `args`, and the seconds it took (tracing,
    lowering and compiling)."""
    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile(xla_options(opts))
    return compiled, time.perf_counter() - t0


def vectorized(plan: nj.Plan, device: jax.Device, opts) -> dict:
    """One width: compile the chunk program, warm it up, time it."""
    bucket = plan.buckets[0]
    width = bucket.vector_runs
    args, shared = program_args(plan, bucket.runs[:width], device)
    compiled, compile_s = compile_timed(make_chunk_fn(plan, bucket, [device]), opts, args, shared)
    row = {"vector_runs": width, "compile_s": compile_s, **xla_memory(compiled)}
    if row["xla_bytes"] is not None and row["xla_bytes"] > memory_limit(device):
        return {**row, "fits": False, "why": "XLA's count exceeds the device memory"}
    jax.block_until_ready(compiled(args, shared))  # warm-up
    times = timed_calls(lambda: compiled(args, shared), opts.repeats, opts.min_time)
    call_s = statistics.median(times)
    return {
        **row,
        "fits": True,
        "calls": len(times),
        "call_s": times,
        "median_call_s": call_s,
        "runs_per_s": width / call_s,
        "runs_per_s_best": width / min(times),
        "xla_bytes_per_run": None if row["xla_bytes"] is None else row["xla_bytes"] / width,
        **device_memory(device),
    }


def measure_width(name: str, steps: int, width: int, quick: bool, device, opts) -> dict:
    """One width, with what stops the sweep over widths (planner refusal, allocation failure)."""
    sweep = make_sweep(name, steps, width, quick)
    try:  # no budget here: XLA's count decides what fits, the default budget is only recorded
        plan = nj.plan(
            sweep, devices=[device], vector_runs=width, chunk_runs=width, max_memory=2**62
        )
    except nj.ConfigError as err:
        return {"vector_runs": width, "fits": False, "why": f"planner: {err}"}
    try:
        nj.plan(sweep, devices=[device], vector_runs=width, chunk_runs=width)
        default_budget = True
    except nj.ConfigError:
        default_budget = False
    try:
        return {**vectorized(plan, device, opts), "fits_default_budget": default_budget}
    except Exception as err:  # noqa: BLE001  an allocation failure ends the setting
        if not out_of_memory(err):
            raise
        return {"vector_runs": width, "fits": False, "why": f"out of memory: {str(err)[:200]}"}


def bench_setting(name: str, steps: int, device: jax.Device, opts) -> dict:
    """The widths of one setting, in increasing order, and the one-at-a-time baseline."""
    t_start = time.perf_counter()
    seq = sequential(name, steps, opts.seq_runs, opts.quick, device, opts)
    cfg = make_sweep(name, steps, 1, opts.quick).cfg
    print(
        f"[{name}] n={cfg.n} d={cfg.d} m={cfg.m} n_test={cfg.n_test} steps={cfg.steps} "
        f"engine={seq['engine']}: one at a time {seq['runs_per_s']:.3g} runs/s "
        f"(compile {seq['compile_s']:.1f} s)",
        flush=True,
    )
    rows, stopped, last = [], None, None
    for width in sorted(opts.widths):
        elapsed = time.perf_counter() - t_start
        if last is not None:
            estimate = 2 * last["median_call_s"] * (last["calls"] + 1) + last["compile_s"]
            if elapsed + estimate > opts.budget:
                stopped = f"time budget: V={width} estimated {estimate:.1f} s, {elapsed:.1f} s used"
                break
        row = measure_width(name, steps, width, opts.quick, device, opts)
        if not row["fits"]:
            stopped = f"V={width} does not fit: {row['why']}"
            break
        row["speedup"] = row["runs_per_s"] / seq["runs_per_s"]
        row["speedup_best"] = row["runs_per_s_best"] / seq["runs_per_s_best"]
        rows.append(row)
        last = row
        print(
            f"  V={width:<5} {row['runs_per_s']:10.3g} runs/s  x{row['speedup']:.2f}  "
            f"compile {row['compile_s']:.1f} s  XLA {mib(row['xla_bytes'])} MiB",
            flush=True,
        )
    if stopped:
        print(f"  stopped: {stopped}", flush=True)
    return {
        "setting": name,
        "config": config_dict(cfg),
        "engine": seq["engine"],
        "sequential": seq,
        "widths": rows,
        "stopped": stopped,
        "elapsed_s": time.perf_counter() - t_start,
        "recommendation": recommend(rows),
    }


# --- recommendation, report ----------------------------------------------------------------


def recommend(rows: list[dict], threshold: float = THRESHOLD) -> dict | None:
    """The smallest measured width whose runs/s is at least `threshold` of the best, with its
    memory per run (XLA's count / V)."""
    if not rows:
        return None
    best = max(r["runs_per_s"] for r in rows)
    row = min(
        (r for r in rows if r["runs_per_s"] >= threshold * best), key=lambda r: r["vector_runs"]
    )
    return {
        "vector_runs": row["vector_runs"],
        "runs_per_s": row["runs_per_s"],
        "fraction_of_best": row["runs_per_s"] / best,
        "best_runs_per_s": best,
        "threshold": threshold,
        "speedup": row["speedup"],
        "xla_bytes_per_run": row["xla_bytes_per_run"],
        "peak_bytes_in_use": row.get("peak_bytes_in_use"),
        "fits_default_budget": row["fits_default_budget"],
    }


def mib(size: float | None) -> str:
    return "n/a" if size is None else f"{size / MIB:.1f}"


def table(results: list[dict]) -> str:
    head = ["setting", "V", "compile s", "s/call", "runs/s", "speedup", "speedup (best)"]
    head += ["XLA MiB", "MiB/run", "peak MiB"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for res in results:
        seq = res["sequential"]
        cells = [res["setting"], "1 (loop)", f"{seq['compile_s']:.1f}", f"{seq['s_per_run']:.3g}"]
        cells += [
            f"{seq['runs_per_s']:.3g}",
            "1",
            "1",
            mib(seq["xla_bytes"]),
            mib(seq["xla_bytes"]),
        ]
        cells.append(mib(seq["peak_bytes_in_use"]))
        lines.append("| " + " | ".join(cells) + " |")
        for r in res["widths"]:
            cells = [res["setting"], str(r["vector_runs"]), f"{r['compile_s']:.1f}"]
            cells += [f"{r['median_call_s']:.3g}", f"{r['runs_per_s']:.3g}", f"{r['speedup']:.2f}x"]
            cells.append(f"{r['speedup_best']:.2f}x")
            cells += [mib(r["xla_bytes"]), mib(r["xla_bytes_per_run"])]
            cells.append(mib(r.get("peak_bytes_in_use")))
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def recommendation_line(res: dict, device_kind: str) -> str:
    rec = res["recommendation"]
    if rec is None:
        return f"[{res['setting']}] no width measured: {res['stopped']}"
    return (
        f"[{res['setting']}] recommended --vector-runs {rec['vector_runs']} on {device_kind} "
        f"({rec['runs_per_s']:.3g} runs/s, {100 * rec['fraction_of_best']:.0f}% of the best, "
        f"{rec['speedup']:.2f}x one at a time; {mib(rec['xla_bytes_per_run'])} MiB per run "
        "by XLA's count)"
        + ("" if rec["fits_default_budget"] else "; above the planner's default budget")
    )


def config_dict(cfg) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}


def git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def machine(device: jax.Device) -> dict:
    return {
        "backend": jax.default_backend(),
        "device": str(device),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "jax": jax.__version__,
        "noisyjax": nj.__version__,
        "cpu_count": os.cpu_count(),
        "loadavg": list(os.getloadavg()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
    }


# --- command line --------------------------------------------------------------------------


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.device", description=__doc__.splitlines()[0]
    )
    p.add_argument("--widths", type=int, nargs="+", help="vector widths V (default: by device)")
    p.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    p.add_argument("--paper-steps", type=int, help="steps of the paper setting")
    p.add_argument("--kou-steps", type=int, help="steps of the Kou setting")
    p.add_argument("--seq-runs", type=int, help="runs of the one-at-a-time loop")
    p.add_argument("--repeats", type=int, help="timed calls per width (at least)")
    p.add_argument("--min-time", type=float, help="seconds of timed calls per width (at least)")
    p.add_argument("--budget", type=float, help="seconds per setting before widening stops")
    p.add_argument("--quick", action="store_true", help="tiny sizes and 2 widths (tests)")
    p.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/device-B.json)")
    args = p.parse_args(argv)
    kind = "quick" if args.quick else ("cpu" if jax.default_backend() == "cpu" else "accelerator")
    for field, value in dataclasses.asdict(PROFILES[kind]).items():
        if getattr(args, field) is None:
            setattr(args, field, value)
    if min(args.widths) < 1 or min(args.paper_steps, args.kou_steps, args.seq_runs) < 1:
        p.error("widths, steps and --seq-runs must be >= 1")
    args.profile = kind
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    device = jax.devices()[0]
    info = machine(device)
    print(
        f"jax {info['jax']} on {info['backend']} ({info['device_kind']}, {info['device_count']} "
        f"device(s)), {info['cpu_count']} CPUs, load {info['loadavg'][0]:.2f}; widths "
        f"{args.widths}",
        flush=True,
    )
    steps = {"paper": args.paper_steps, "kou": args.kou_steps}
    path = args.out or ROOT / "benchmarks" / "results" / f"device-{info['backend']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {k: v for k, v in vars(args).items() if k != "out"}
    results = []
    for setting in args.settings:  # written after each setting: a long run keeps what it measured
        results.append(bench_setting(setting, steps[setting], device, args))
        info["loadavg_end"] = list(os.getloadavg())
        out = {"machine": info, "options": options, "results": results}
        path.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print()
    print(table(results))
    print()
    for res in results:
        print(recommendation_line(res, info["device_kind"]))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
