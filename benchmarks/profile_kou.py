"""Where the time of one Kou et al. training goes: the `kou2023-grid` preset's program, taken apart.

The preset (100,000 trainings of n = 20, m = 10, 100 full-batch steps, 1,000 test points, PyTorch
init, compiled at d = 1090 on the wishart engine) is the project's largest CPU job. This script
measures its chunk program on one device in two ways, in one invocation:

1. Parts. The same `lax.map` over groups of V vmapped runs as the sweep engine, around each part
   of a training alone, jitted and timed side by side (calls interleaved, `--repeats` rounds, the
   median per part): drawing the initial filters (PyTorch's uniform init in R^d and its QR
   decomposition), the training set, the test set, the whole draw (`sample_run`), a training
   of one step (the draw, two test evaluations, the stage summary), and the preset's training.
   The per-step cost is (whole - one step) / (steps - 1).
2. XLA's own per-operation profile. One call of the preset's training program under
   `jax.profiler.trace`; every operation XLA ran (a "thunk" on the CPU) is summed by name.
   Operations that ran once per step of every group are the loop body; the others run once per
   group. The heaviest per-step operations are listed with the JAX source they came from (the
   `op_name` XLA keeps). The profiler slows small operations, so read its shares, not its
   absolute times.

Runtimes depend on the machine and its load (printed with the results); the shares and the
operation counts are the portable numbers.

Usage:
  python -m benchmarks.profile_kou                       # about 1 minute on a 2-core CPU
  python -m benchmarks.profile_kou --runs 512 --json profile.json
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/profile_kou.py` as well as `-m`
    sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import numpy as np  # noqa: E402

import noisyjax as nj  # noqa: E402
from benchmarks.bench_sweep import machine  # noqa: E402
from noisyjax.synthetic.data import split_keys  # noqa: E402
from noisyjax.synthetic.engines import wishart  # noqa: E402
from noisyjax.synthetic.experiment import run_inputs  # noqa: E402
from noisyjax.synthetic.train import make_train, sample_run  # noqa: E402
from sweeps.presets.kou import kou2023_grid  # noqa: E402


def preset_bucket(runs: int):
    """The preset's compiled config (engine resolved) and `runs` of its runs' inputs."""
    sweep, _ = kou2023_grid()
    plan = nj.plan(sweep, devices=jax.local_devices()[:1])
    bucket = plan.buckets[0]
    picked = np.random.default_rng(0).choice(bucket.runs, runs, replace=False)
    return bucket.cfg, bucket.vector_runs, run_inputs(plan.table, np.sort(picked), bucket.cfg)


def parts(cfg: nj.Config) -> dict:
    """name -> f(seed, hp, sizes, cfg) of one run; each is what its name says, alone."""
    assert cfg.step_engine == "wishart", cfg.step_engine  # engine "auto" at d = 1090

    def keys(seed):
        k_data, k_init = jax.random.split(jax.random.key(seed), 3)[:2]
        return k_data, k_init

    def filters(seed, hp, sizes, cfg):
        k_data, k_init = keys(seed)
        return wishart.filter_coordinates(k_init, cfg, hp, sizes, split_keys(k_data)[0])

    def split(name):
        def draw(seed, hp, sizes, cfg):
            return wishart.noise_coordinates(keys(seed)[0], cfg, hp, sizes, name)

        return draw

    def sample(seed, hp, sizes, cfg):
        return sample_run(jax.random.key(seed), cfg, hp, sizes)  # what the training draws

    def train(cfg):
        def run(seed, hp, sizes, _):
            return make_train(cfg)(jax.random.key(seed), hp, sizes)[1]

        return run

    return {
        "draw: initial filters (uniform in R^d, QR)": filters,
        "draw: training set": split("train"),
        f"draw: test set ({cfg.n_test} points)": split("test"),
        "draw: whole run (sample_run)": sample,
        "training of 1 step (draw, 2 test evaluations, summary)": train(
            cfg.replace(steps=1, log_every=1, eval_every=1)
        ),
        f"training of {cfg.steps} steps (the preset's run)": train(cfg),
    }


def mapped(f, cfg, width: int):
    return jax.jit(lambda s, h, z: jax.lax.map(lambda a: f(*a, cfg), (s, h, z), batch_size=width))


def time_parts(cfg, width, inputs, repeats: int) -> tuple[dict[str, dict], dict]:
    """Median (and best) ms per run of each part, calls interleaved over `repeats` rounds, and
    the compiled program of each part."""
    compiled, times = {}, collections.defaultdict(list)
    for name, f in parts(cfg).items():
        t0 = time.perf_counter()
        compiled[name] = mapped(f, cfg, width).lower(*inputs).compile()
        jax.block_until_ready(compiled[name](*inputs))
        times[name + " compile"] = [time.perf_counter() - t0]
    n_runs = len(inputs[0])
    for _ in range(repeats):
        for name, c in compiled.items():
            t0 = time.perf_counter()
            jax.block_until_ready(c(*inputs))
            times[name].append((time.perf_counter() - t0) / n_runs * 1e3)
    timed = {
        name: {
            "ms_per_run": statistics.median(times[name]),
            "best_ms_per_run": min(times[name]),
            "compile_s": times[name + " compile"][0],
        }
        for name in compiled
    }
    return timed, compiled


def op_sources(hlo: str) -> dict[str, str]:
    """Every instruction of the compiled program -> the JAX source XLA recorded for it (its
    `op_name` metadata; empty for a fusion XLA made without one)."""
    found = {}
    for line in hlo.splitlines():
        m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = ", line)
        if m:
            source = re.search(r'op_name="([^"]*)"', line)
            found[m.group(1)] = source.group(1).split("eval_jaxpr/")[-1][:80] if source else ""
    return found


def xla_profile(compiled, cfg, width, inputs, top: int) -> dict:
    """XLA's per-operation times for one call of the preset's training program (`compiled`,
    already called once by `time_parts`)."""
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            jax.block_until_ready(compiled(*inputs))
        (path,) = Path(trace_dir).rglob("perfetto_trace.json.gz")
        events = json.loads(gzip.decompress(path.read_bytes()))["traceEvents"]
    sources = op_sources(compiled.as_text())
    total, calls = collections.Counter(), collections.Counter()
    for e in events:  # the thunks XLA ran, named after their HLO instructions
        if e.get("ph") == "X" and e["name"] in sources:
            total[e["name"]] += e.get("dur", 0.0)
            calls[e["name"]] += 1
    groups = len(inputs[0]) // width
    per_step = {k for k, c in calls.items() if c == groups * cfg.steps}
    loops = {k for k in total if k.startswith(("while", "call"))}  # containers of other ops
    leaf = {k: v for k, v in total.items() if k not in loops}
    step_us = sum(leaf[k] for k in per_step)
    heavy = sorted(per_step, key=lambda k: -leaf[k])[:top]
    return {
        "per_step_operations": len(per_step),
        "per_step_share": step_us / max(sum(leaf.values()), 1e-9),
        "once_per_group_operations": len(set(leaf) - per_step),
        "heaviest_per_step": [
            {
                "operation": k,
                "share_of_step": leaf[k] / max(step_us, 1e-9),
                "source": sources.get(k, ""),
            }
            for k in heavy
        ],
    }


def report(cfg, width, n_runs, timed, prof, info) -> str:
    steps = cfg.steps
    names = list(timed)
    whole = timed[names[-1]]["ms_per_run"]
    one = timed[names[-2]]["ms_per_run"]
    lines = [
        f"Kou et al. training (kou2023-grid's program): n={cfg.n}, m={cfg.m}, d={cfg.d}, "
        f"n_test={cfg.n_test}, {steps} steps, engine {cfg.step_engine}; {n_runs} runs in "
        f"groups of V={width} on {info['devices'][0]}; load average "
        f"{info['load_average'][0]:.2f} at the start",
        "",
        "| part | ms per run (median) | best | share of the training | compile s |",
        "| ---- | ------------------- | ---- | --------------------- | --------- |",
    ]
    for name in names:
        t = timed[name]
        lines.append(
            f"| {name} | {t['ms_per_run']:.3f} | {t['best_ms_per_run']:.3f} | "
            f"{t['ms_per_run'] / whole:.0%} | {t['compile_s']:.1f} |"
        )
    per_step = (whole - one) / (steps - 1)
    lines.append(
        f"| per step ((whole - 1 step) / {steps - 1}) | {per_step * 1e3:.2f} us | | "
        f"{per_step * (steps - 1) / whole:.0%} of the training | |"
    )
    lines += [
        "",
        f"XLA profile: {prof['per_step_operations']} operations per step "
        f"({prof['per_step_share']:.0%} of the profiled time), "
        f"{prof['once_per_group_operations']} once per group of runs. Heaviest per step:",
        "",
        "| operation | share of the step | JAX source |",
        "| --------- | ----------------- | ---------- |",
    ]
    for op in prof["heaviest_per_step"]:
        source = op["source"].replace("|", "/")
        lines.append(f"| {op['operation']} | {op['share_of_step']:.0%} | `{source}` |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=256, help="runs per timed call")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--top", type=int, default=8, help="per-step operations listed")
    parser.add_argument("--json", type=Path, help="also write every number here")
    args = parser.parse_args(argv)
    info = {**machine(), "load_average": os.getloadavg()}
    cfg, width, inputs = preset_bucket(args.runs)
    timed, compiled = time_parts(cfg, width, inputs, args.repeats)
    preset_run = compiled[f"training of {cfg.steps} steps (the preset's run)"]
    prof = xla_profile(preset_run, cfg, width, inputs, args.top)
    print(report(cfg, width, args.runs, timed, prof, info))
    if args.json:
        out = {"machine": info, "options": vars(args) | {"json": str(args.json)}}
        out |= {"parts": timed, "xla_profile": prof}
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
