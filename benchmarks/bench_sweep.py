"""Runs per second of the sweep engine against the same runs trained one at a time.

Both paths train the same runs (same seeds, same hyperparameters, same static `Config`):

* engine: `noisyjax.plan(sweep)` and `noisyjax.sweep.run_chunks`, i.e. what
  `python -m sweeps.grid` does minus the file I/O: one compiled, vmapped program per bucket, run
  over the plan's chunks, metrics copied back to the host.
* sequential: `jax.jit(noisyjax.make_train(cfg))` called in a Python loop, one run per call, with
  every hyperparameter passed as an array (so one compile covers all runs), each result blocked
  on and copied back to the host. This is how theory code is usually written.

Compilation is excluded from the timed passes and reported separately. The sequential path
compiles on its first call; its compile time is that call minus the steady per-run time. The
engine compiles inside every `run_chunks` call and records it (`Timing.compile_s`, tracing and
lowering included), which the timed passes subtract; its reported compile time is the first,
cold pass's. A throwaway persistent compilation cache keeps the later passes' compiles short
(`--no-cache` turns it off). The first pass of each path is a warm-up whose metrics are checked
to agree (`numpy.allclose`), and the same runs again in float64 (stage times exactly, floats to
1e-10), so both paths compute the same thing and a float32 deviation is rounding. Timed passes
then alternate between the two paths so that both see the same machine state; throughput is
`runs / median pass time` and the ratio is engine runs/s over sequential runs/s (above 1: the
engine is faster). The best-pass ratio (shortest pass of each path) is printed too: on a shared
machine it is the one least disturbed by other processes.

Usage:
  python -m benchmarks.bench_sweep                      # both settings
  python -m benchmarks.bench_sweep --setting small --runs 32 --repeats 5
  python -m benchmarks.bench_sweep --json bench.json    # also save the numbers
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
import tempfile
import time
from pathlib import Path

# Direct execution (`python benchmarks/bench_sweep.py`) needs the repository root on the path.
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import numpy as np  # noqa: E402

import noisyjax as nj  # noqa: E402
from noisyjax.sweep import (  # noqa: E402
    Axis,  # noqa: E402
    Timing,
    run_chunks,
)
from noisyjax.synthetic.config import HPARAM_FIELDS  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Setting:
    """A benchmark setting: static config, base hyperparameters and default run count."""

    name: str
    cfg: nj.Config
    hp: nj.HParams
    runs: int
    repeats: int
    note: str


SETTINGS = {
    # Small problems: a step is a few tiny matmuls, so fixed per-step and per-call costs weigh most.
    "small": Setting(
        "small",
        nj.Config(n=20, d=100, m=4, steps=300, log_every=10, n_test=100),
        nj.HParams(eta=0.05, mu_norm=4.0, sigma_p=1.0, sigma_0=0.01),
        runs=256,
        repeats=3,
        note="n=20, d=100, m=4, n_test=100",
    ),
    # The paper's size (Han et al., ICML 2025): n=200, d=2000, m=20.
    "paper": Setting(
        "paper",
        nj.Config(n=200, d=2000, m=20, steps=200, log_every=10, n_test=1000),
        nj.HParams(eta=0.05, mu_norm=7.0, sigma_p=1.0, sigma_0=0.01),
        runs=8,
        repeats=3,
        note="n=200, d=2000, m=20, n_test=1000",
    ),
}


def make_sweep(setting: Setting, runs: int, steps: int | None) -> nj.Sweep:
    """`runs` runs of the setting: an axis of label-noise rates times seeds 0..S-1."""
    cfg = setting.cfg if steps is None else setting.cfg.replace(steps=steps)
    n_tau = next(k for k in (8, 4, 2, 1) if runs % k == 0)
    taus = tuple(float(t) for t in np.round(np.linspace(0.0, 0.35, n_tau), 6))
    return nj.Sweep(
        f"bench-{setting.name}", cfg, setting.hp, (Axis("tau", taus),), seeds=runs // n_tau
    )


def engine_pass(plan: nj.Plan) -> tuple[float, float, dict[str, np.ndarray]]:
    """One full pass of the engine: (seconds excluding compilation, compile seconds, metrics)."""
    timing = Timing()
    todo = np.arange(plan.table.n_runs)
    out: dict[str, np.ndarray] = {}
    t0 = time.perf_counter()
    for chunk in run_chunks(plan, todo, timing=timing):
        runs_C, metrics = chunk[0], chunk[1]  # (runs, metrics, ...): later items are not compared
        for k, v in metrics.items():
            out.setdefault(k, np.empty((plan.table.n_runs,) + v.shape[1:], v.dtype))[runs_C] = v
    total = time.perf_counter() - t0
    return total - timing.compile_s, timing.compile_s, out


def run_hparams(table: nj.RunTable, i: int, dtype: np.dtype) -> nj.HParams:
    """Run i's hyperparameters as 0-d arrays (traced, so every run reuses one compile)."""
    return nj.HParams(**{f: np.asarray(table.hp[f][i], dtype) for f in HPARAM_FIELDS})


def sequential_pass(
    train, table: nj.RunTable, dtype: np.dtype
) -> tuple[float, list[dict[str, np.ndarray]]]:
    """One run per call of the jitted `train`: (seconds, per-run metrics)."""
    results = []
    t0 = time.perf_counter()
    for i in range(table.n_runs):
        _, metrics = train(jax.random.key(int(table.seed[i])), run_hparams(table, i, dtype))
        results.append(jax.device_get(jax.block_until_ready(metrics)))
    return time.perf_counter() - t0, results


def compare(
    engine: dict[str, np.ndarray], seq: list[dict[str, np.ndarray]], rtol: float, atol: float
) -> tuple[bool, float, str]:
    """Whether every metric of every run agrees; also the largest deviation and where."""
    ok, worst, where = True, 0.0, ""
    for k, e in engine.items():
        s = np.stack([np.asarray(r[k]) for r in seq])
        e, s = e.astype(np.float64), s.astype(np.float64)
        if not np.allclose(e, s, rtol=rtol, atol=atol, equal_nan=True):
            ok = False
        both = np.isfinite(e) & np.isfinite(s)
        if np.any(np.isfinite(e) != np.isfinite(s)):
            ok, worst, where = False, np.inf, k
        elif both.any():
            dev = float(np.max(np.abs(e - s)[both] / (atol + rtol * np.abs(s)[both])))
            if dev > worst:
                worst, where = dev, k
    return ok, worst, where


def float64_agreement(setting: Setting, runs: int, steps: int | None, plan_options: dict) -> dict:
    """The agreement check again in float64: the same runs on both paths, integers (stage times)
    exactly and floats to 1e-10. In float32 the two paths' compiled programs may round sums
    differently (vmap batches the reductions), which the float32 check tolerates (rtol 1e-4);
    the deviation that is left at float64 is what the paths disagree on, not rounding."""
    was_x64 = bool(jax.config.jax_enable_x64)
    jax.config.update("jax_enable_x64", True)
    try:
        f64 = dataclasses.replace(setting, cfg=setting.cfg.replace(dtype="float64"))
        sweep = make_sweep(f64, runs, steps)
        plan = nj.plan(sweep, **plan_options)
        train = jax.jit(nj.make_train(sweep.cfg))
        _, _, eng_out = engine_pass(plan)
        _, seq_out = sequential_pass(train, plan.table, np.dtype("float64"))
        ints = {k: v for k, v in eng_out.items() if not np.issubdtype(v.dtype, np.floating)}
        exact = all(
            np.array_equal(v, np.stack([np.asarray(r[k]) for r in seq_out]))
            for k, v in ints.items()
        )
        floats = {k: v for k, v in eng_out.items() if k not in ints}
        agree, worst, where = compare(floats, seq_out, 1e-10, 1e-12)
    finally:
        jax.config.update("jax_enable_x64", was_x64)
    print(
        f"  float64: stage times and flags equal: {exact}; floats agree (rtol=1e-10): {agree}, "
        f"largest deviation {worst:.3g} of tolerance ({where})",
        flush=True,
    )
    return {"float64_exact_ints": exact, "float64_agree": agree, "float64_worst": worst}


def bench(
    setting: Setting,
    runs: int,
    steps: int | None,
    repeats: int,
    plan_options: dict,
    rtol: float,
    atol: float,
) -> dict:
    sweep = make_sweep(setting, runs, steps)
    plan = nj.plan(sweep, **plan_options)
    cfg, table = sweep.cfg, plan.table
    dtype = np.dtype(cfg.dtype)
    n = table.n_runs
    bucket = plan.buckets[0]
    width = getattr(bucket, "vector_runs", bucket.chunk_runs)
    print(
        f"[{setting.name}] {setting.note}, steps={cfg.steps}, log_every={cfg.log_every}, "
        f"runs={n}; engine: {plan.n_chunks} chunk(s) of {bucket.chunk_runs} runs, "
        f"{width} vmapped at a time",
        flush=True,
    )

    # Warm-up and agreement check. The engine compiles inside every pass (run_chunks builds its
    # program per call) and reports it; the sequential path compiles on its first call.
    train = jax.jit(nj.make_train(cfg))
    t0 = time.perf_counter()
    first = train(jax.random.key(int(table.seed[0])), run_hparams(table, 0, dtype))
    jax.block_until_ready(first)
    seq_first_s = time.perf_counter() - t0
    _, eng_compile, eng_out = engine_pass(plan)
    _, seq_out = sequential_pass(train, table, dtype)
    agree, worst, where = compare(eng_out, seq_out, rtol, atol)
    print(
        f"  metrics agree (rtol={rtol:g}, atol={atol:g}): {agree}; largest deviation "
        f"{worst:.3g} of tolerance ({where})",
        flush=True,
    )

    eng_times, seq_times, eng_compiles = [], [], [eng_compile]
    for r in range(repeats):
        e_s, e_c, _ = engine_pass(plan)
        s_s, _ = sequential_pass(train, table, dtype)
        eng_times.append(e_s)
        seq_times.append(s_s)
        eng_compiles.append(e_c)
        print(
            f"  repeat {r + 1}/{repeats}: engine {e_s:.3f} s ({n / e_s:.1f} runs/s), "
            f"sequential {s_s:.3f} s ({n / s_s:.1f} runs/s), ratio {s_s / e_s:.2f}",
            flush=True,
        )
    eng_s, seq_s = statistics.median(eng_times), statistics.median(seq_times)
    f64 = float64_agreement(setting, runs, steps, plan_options)
    return {
        **f64,
        "setting": setting.name,
        "note": setting.note,
        "runs": n,
        "steps": cfg.steps,
        "log_every": cfg.log_every,
        "chunks": plan.n_chunks,
        "chunk_runs": bucket.chunk_runs,
        "vector_runs": width,
        "repeats": repeats,
        "engine_s": eng_times,
        "sequential_s": seq_times,
        "engine_runs_per_s": n / eng_s,
        "sequential_runs_per_s": n / seq_s,
        "ratio": seq_s / eng_s,
        "ratio_best": min(seq_times) / min(eng_times),
        "ratio_per_repeat": [s / e for s, e in zip(seq_times, eng_times, strict=True)],
        "engine_compile_s": eng_compiles[0],
        "engine_recompile_s": eng_compiles[1:],
        "sequential_compile_s": max(0.0, seq_first_s - seq_s / n),
        "agree": agree and f64["float64_exact_ints"] and f64["float64_agree"],
        "float32_agree": agree,
        "max_deviation_of_tolerance": worst,
        "rtol": rtol,
        "atol": atol,
    }


def git(*args: str) -> str:
    root = Path(nj.__file__).resolve().parents[1]
    done = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=10
    )
    return done.stdout.strip()


def source_version() -> str:
    """The checked-out commit of the library, with "+dirty" for uncommitted changes to it."""
    try:
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "noisyjax")
        return git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    return {
        "noisyjax": f"{nj.__version__} ({source_version()})",
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.local_devices()],
        "usable_cpu_cores": cores,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


def table(rows: list[dict]) -> str:
    head = (
        "setting",
        "runs",
        "steps",
        "engine runs/s",
        "sequential runs/s",
        "ratio (median)",
        "ratio (best)",
        "compile s (engine / seq)",
        "agree",
    )
    lines = [" | ".join(head), " | ".join("-" * len(h) for h in head)]
    for r in rows:
        lines.append(
            " | ".join(
                [
                    r["setting"],
                    str(r["runs"]),
                    str(r["steps"]),
                    f"{r['engine_runs_per_s']:.2f}",
                    f"{r['sequential_runs_per_s']:.2f}",
                    f"{r['ratio']:.2f}x",
                    f"{r['ratio_best']:.2f}x",
                    f"{r['engine_compile_s']:.2f} / {r['sequential_compile_s']:.2f}",
                    "yes" if r["agree"] else "NO",
                ]
            )
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_sweep", description=__doc__.splitlines()[0]
    )
    p.add_argument("--setting", choices=(*SETTINGS, "all"), default="all")
    p.add_argument(
        "--runs", type=int, default=None, help="runs per setting (default: 256 small, 8 paper)"
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="GD steps, a multiple of log_every=10 (default: 300 small, 200 paper)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed passes of each path (default: 3)",
    )
    p.add_argument(
        "--chunk-runs",
        type=int,
        default=None,
        help="engine runs per chunk (default: the plan's choice, as the CLI)",
    )
    p.add_argument(
        "--vector-runs",
        type=int,
        default=None,
        help="engine runs vmapped together (default: the plan's choice, as the CLI)",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="no persistent compilation cache: every engine pass compiles cold",
    )
    p.add_argument("--rtol", type=float, default=1e-4)
    p.add_argument("--atol", type=float, default=1e-5)
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="save results")
    args = p.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        p.error("--runs must be >= 1")
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be >= 1")

    if not args.no_cache:
        # run_chunks traces and compiles its program on every call; a throwaway persistent cache
        # turns the compiles of the timed passes into cache loads. The reported engine compile
        # time is the first (cold) pass's; later passes' lowering and loading stay untimed.
        cache = tempfile.TemporaryDirectory(prefix="bench-sweep-cache-")
        jax.config.update("jax_compilation_cache_dir", cache.name)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    info = machine()
    print(
        f"noisyjax {info['noisyjax']}, jax {info['jax']} on {info['backend']} {info['devices']}, "
        f"{info['usable_cpu_cores']} usable CPU cores",
        flush=True,
    )
    plan_options = {
        k: v
        for k, v in (("chunk_runs", args.chunk_runs), ("vector_runs", args.vector_runs))
        if v is not None
    }
    names = list(SETTINGS) if args.setting == "all" else [args.setting]
    try:
        rows = [
            bench(
                SETTINGS[s],
                args.runs or SETTINGS[s].runs,
                args.steps,
                args.repeats or SETTINGS[s].repeats,
                plan_options,
                args.rtol,
                args.atol,
            )
            for s in names
        ]
    except nj.ConfigError as err:
        p.error(str(err))
    print()
    print(table(rows))
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": info, "results": rows}, indent=2) + "\n")
    return 0 if all(r["agree"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
