"""Runs per second and achieved GFLOP/s of the dense, gram and wishart engines.

Every number is measured in one invocation, side by side, through the sweep engine
(`noisyjax.plan` + `noisyjax.sweep.run_chunks`: what `python -m sweeps.grid` runs, minus file
I/O). Compilation is timed separately and excluded from runs/s.

Parts (all by default):
  peak     this machine's float32 matmul throughput (best of square products of several sizes),
           the yardstick for "fraction of peak".
  paper    the paper's setting (n=200, d=2000, m=20, n_test=1000) on each engine: the same runs
           (seeds, hyperparameters), runs/s, model GFLOP/s, and the ratios gram/dense and
           wishart/dense, at 300, 600 (the paper-fig1 preset's length) and 3,000 steps (the
           data are drawn once per run, in R^d on dense and gram: short runs weigh that more).
  dims     d in {10^3, 10^4, 10^5} at n=200, m=20: time per run of each engine (dense only where
           it finishes in reasonable time); wishart's d = 10^5 over d = 10^3 time.
  scale    1,024 runs of the paper setting for 3,000 steps on the wishart engine, wall time
           including compilation.
  devices  one JAX device against one device per CPU core (what `python -m sweeps.grid` uses
           on a CPU; `noisyjax.sweep.distributed.use_cpu_cores`): the same dense and wishart runs in
           two fresh interpreters each (the device count is fixed when JAX starts).

GFLOP counts are a model of the main contractions, not a hardware counter:
  dense    per step 16 m n d (pre-activations and their pull back, 2 patches, 2m filters); per
           test evaluation 8 m n_test d; per logged point 8 m (n + n_test) d.
  gram     per step 4 m K^2 (the projections move by dC G, K = n + 1); per evaluation
           4 m K n_test; per logged point 4 m K n_test; once per run the projections of the
           training and test sets: 2 K d (K + n_test + 2m).
  wishart  as gram, with d replaced by the sampled dimension 1 + 2m + n.

Usage:
  python -m benchmarks.bench_engines                      # everything (about 10 minutes)
  python -m benchmarks.bench_engines --part paper --runs 32 --paper-steps 300
  python -m benchmarks.bench_engines --json engines.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import noisyjax as nj  # noqa: E402
from noisyjax.sweep import (  # noqa: E402
    Axis,  # noqa: E402
    Timing,
    run_chunks,
)
from noisyjax.sweep.distributed import use_cpu_cores  # noqa: E402

ENGINES = ("dense", "gram", "wishart")
HP = nj.HParams(eta=0.05, mu_norm=7.0, sigma_p=1.0, sigma_0=0.001, tau_plus=0.2, tau_minus=0.2)


def paper_cfg(engine: str, steps: int, every: int, d: int = 2000) -> nj.Config:
    """The paper's setting; test error and metrics every `every` steps."""
    return nj.Config(
        n=200, d=d, m=20, steps=steps, log_every=every, n_test=1000, eval_every=every, engine=engine
    )


def model_gflop(cfg: nj.Config, runs: int) -> float:
    """The modelled floating-point work of `runs` runs (see the module docstring)."""
    n, m, nt, steps = cfg.n, cfg.m, cfg.n_test, cfg.steps
    evals, logs = steps // cfg.eval_every + 1, cfg.n_logs
    if cfg.step_engine == "dense":
        d = cfg.d
        work = steps * 16 * m * n * d + evals * 8 * m * nt * d + logs * 8 * m * (n + nt) * d
    else:
        k = n + 1
        d = cfg.d if cfg.step_engine == "gram" else cfg.reduced_d
        work = steps * 4 * m * k * k + (evals + logs) * 4 * m * k * nt
        work += 2 * k * d * (k + nt + 2 * m)
    return runs * work / 1e9


def timed_sweep(cfg: nj.Config, runs: int) -> dict[str, float]:
    """Run `runs` seeds of `cfg` through the sweep engine: times and throughput."""
    sweep = nj.Sweep(f"bench-{cfg.engine}", cfg, HP, (Axis("tau", (0.2,)),), seeds=runs)
    plan = nj.plan(sweep)
    timing = Timing()
    t0 = time.perf_counter()
    final = []
    for _, metrics, _ in run_chunks(plan, np.arange(runs), timing=timing):
        final.append(metrics["test_err"][:, -1])
    wall = time.perf_counter() - t0
    gflop = model_gflop(cfg, runs)
    return {
        "engine": cfg.engine,
        "d": cfg.d,
        "runs": runs,
        "steps": cfg.steps,
        "vector_runs": plan.buckets[0].vector_runs,
        "wall_s": wall,
        "compile_s": timing.compile_s,
        "run_s": timing.run_s,
        "runs_per_s": runs / timing.run_s,
        "s_per_run": timing.run_s / runs,
        "model_gflop": gflop,
        "gflop_per_s": gflop / timing.run_s,
        "mean_final_test_err": float(np.mean(np.concatenate(final))),
    }


def matmul_peak() -> float:
    """Best float32 GFLOP/s of jitted square matmuls (512 to 2048), best of 5 each."""
    best = 0.0
    for size in (512, 1024, 2048):
        a = jnp.ones((size, size), jnp.float32)
        f = jax.jit(lambda x, y: x @ y)
        f(a, a).block_until_ready()
        for _ in range(5):
            t0 = time.perf_counter()
            f(a, a).block_until_ready()
            best = max(best, 2 * size**3 / (time.perf_counter() - t0) / 1e9)
    return best


def show(row: dict[str, float]) -> None:
    print(
        f"  {row['engine']:<8} d={row['d']:<7} runs={row['runs']:<5} steps={row['steps']:<5} "
        f"run {row['run_s']:7.2f} s  compile {row['compile_s']:5.1f} s  "
        f"{row['runs_per_s']:8.3f} runs/s  {row['gflop_per_s']:6.1f} GFLOP/s",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--part", choices=("all", "peak", "paper", "dims", "scale", "devices"), default="all"
    )
    p.add_argument("--runs", type=int, default=16, help="runs per engine in 'paper' and 'dims'")
    p.add_argument("--steps", type=int, default=300, help="steps per run in 'dims'")
    p.add_argument("--every", type=int, default=30, help="log and test-error interval")
    p.add_argument(
        "--paper-steps", type=int, nargs="+", default=[300, 600, 3000], help="steps in 'paper'"
    )
    p.add_argument("--scale-runs", type=int, default=1024)
    p.add_argument("--scale-steps", type=int, default=3000)
    p.add_argument("--scale-engine", choices=ENGINES, default="wishart")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--figure", type=Path, default=None, help="time per run against d (PNG)")
    args = p.parse_args(argv)
    parts = ("peak", "paper", "dims", "scale", "devices") if args.part == "all" else (args.part,)
    use_cpu_cores()  # as `python -m sweeps.grid` does: one JAX device per CPU core
    out: dict = {
        "machine": {
            "backend": jax.default_backend(),
            "devices": [str(d) for d in jax.devices()],
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "jax": jax.__version__,
        }
    }
    if "peak" in parts:
        out["peak_gflop_per_s"] = matmul_peak()
        print(f"float32 matmul peak: {out['peak_gflop_per_s']:.1f} GFLOP/s", flush=True)
    if "paper" in parts:
        print("paper setting (n=200, d=2000, m=20, n_test=1000):", flush=True)
        out["paper"], out["paper_ratios"] = [], {}
        for steps in args.paper_steps:
            rows = [timed_sweep(paper_cfg(e, steps, args.every), args.runs) for e in ENGINES]
            for row in rows:
                show(row)
            by = {r["engine"]: r for r in rows}
            out["paper"] += rows
            out["paper_ratios"][steps] = {
                f"{e}_over_dense": by[e]["runs_per_s"] / by["dense"]["runs_per_s"]
                for e in ("gram", "wishart")
            }
            if "peak_gflop_per_s" in out:
                fraction = by["dense"]["gflop_per_s"] / out["peak_gflop_per_s"]
                out["paper_ratios"][steps]["dense_fraction_of_peak"] = fraction
            print(f"  {steps} steps:", json.dumps(out["paper_ratios"][steps]), flush=True)
    if "dims" in parts:
        print("dimension sweep (n=200, m=20, n_test=1000):", flush=True)
        rows = []
        for d in (10**3, 10**4, 10**5):
            engines = ENGINES if d <= 10**4 else ("gram", "wishart")
            for e in engines:
                # gram at d = 10^5 draws 10^8 numbers per run: one vector width of runs only.
                runs = 8 if (e == "gram" and d > 10**4) else args.runs
                rows.append(timed_sweep(paper_cfg(e, args.steps, args.every, d=d), runs))
                show(rows[-1])
        out["dims"] = rows
        wis = {r["d"]: r["s_per_run"] for r in rows if r["engine"] == "wishart"}
        out["wishart_1e5_over_1e3"] = wis[10**5] / wis[10**3]
        print(f"  wishart time per run, d=1e5 over d=1e3: {out['wishart_1e5_over_1e3']:.2f}")
    if "scale" in parts:
        cfg = paper_cfg(args.scale_engine, args.scale_steps, args.every)
        t0 = time.perf_counter()
        row = timed_sweep(cfg, args.scale_runs)
        row["total_s"] = time.perf_counter() - t0
        out["scale"] = row
        show(row)
        print(f"  {args.scale_runs} runs x {args.scale_steps} steps: {row['total_s']:.1f} s total")
    if "devices" in parts:
        print("one device against one device per core (paper setting):", flush=True)
        out["devices"] = devices_comparison(args.every)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    if args.figure and "dims" in out:
        dims_figure(out["dims"], args.figure)
    return 0


def devices_comparison(every: int) -> list[dict]:
    """Run the same workloads with 1 CPU device and with one per core, in fresh interpreters."""
    import subprocess
    import tempfile

    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k != "JAX_NUM_CPU_DEVICES"}
    rows = []
    for engine, runs, steps in (("dense", 16, 300), ("wishart", 128, 3000)):
        by = {}
        for label, pin in (("1 device", {"JAX_NUM_CPU_DEVICES": "1"}), ("per core", {})):
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "out.json"
                cmd = [sys.executable, "-m", "benchmarks.bench_engines", "--part", "scale"]
                cmd += ["--scale-engine", engine, "--scale-runs", str(runs)]
                cmd += ["--scale-steps", str(steps), "--every", str(every), "--json", str(path)]
                subprocess.run(cmd, check=True, cwd=root, env={**env, **pin}, capture_output=True)
                result = json.loads(path.read_text())
            row = {**result["scale"], "devices": len(result["machine"]["devices"]), "how": label}
            by[label] = row
            rows.append(row)
            show(row)
        ratio = by["1 device"]["run_s"] / by["per core"]["run_s"]
        print(f"  {engine}: per-core devices {ratio:.2f}x the runs/s of one device", flush=True)
        rows[-1]["speedup_over_one_device"] = ratio
    return rows


def dims_figure(rows: list[dict], path: Path) -> None:
    """Seconds per run (excluding compilation) against d, one line per engine."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.8), layout="constrained")
    ax = fig.add_subplot()
    for engine, marker in zip(ENGINES, "osD", strict=True):
        pts = sorted((r["d"], r["s_per_run"]) for r in rows if r["engine"] == engine)
        if pts:
            ax.loglog(*zip(*pts, strict=True), marker=marker, label=engine)
    ax.set_xlabel("dimension d")
    ax.set_ylabel("seconds per run")
    ax.set_title("n=200, m=20, n_test=1000, 2-core CPU", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
