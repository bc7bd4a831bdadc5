"""Every benchmark in one command: `python -m benchmarks`.

Runs each benchmark of this folder in its own process, one after another (never side by side: they
would share the cores), with its JSON written next to the others, and writes TABLES.md: the
machine, the library's commit, the JAX version, the load average before and after each benchmark,
its wall time, and the tables it printed, which are the tables of docs/performance.md and
docs/refine.md. A benchmark that fails is reported with its exit status and the last lines it
printed; the others still run, and the exit status is 1.

Usage:
  python -m benchmarks                                 # all of them: about 25 minutes, 2 cores
  python -m benchmarks --only sweep kou-profile        # a subset
  python -m benchmarks --out results/today             # TABLES.md and the JSONs there
  python -m benchmarks --list
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name: (module, its arguments before the JSON path, the flag that takes the JSON path, about
# how long it takes on an idle 2-core CPU)
BENCHMARKS = {
    "sweep": ("benchmarks.bench_sweep", [], "--json", "2.5 min"),
    "kou-profile": ("benchmarks.profile_kou", [], "--json", "1 min"),
    "device": ("benchmarks.device", [], "--out", "2 min"),
    "engines": ("benchmarks.bench_engines", [], "--json", "12 min"),
    "refine": ("benchmarks.bench_refine", [], "--json", "5 min"),
    "kou-sequential": ("benchmarks.bench_kou_sequential", [], "--json", "5 s"),
}


def header() -> list[str]:
    import jax  # after the arguments are parsed: `--list` needs no JAX

    import noisyjax as nj
    from benchmarks.bench_sweep import source_version  # the commit every benchmark records

    commit = source_version()
    return [
        "# Benchmark tables",
        "",
        f"Written by `python -m benchmarks` on {datetime.date.today().isoformat()}.",
        "",
        f"- noisyjax {nj.__version__} at commit {commit}; jax {jax.__version__}; "
        f"Python {sys.version.split()[0]}",
        f"- machine: {os.uname().machine}, {os.cpu_count()} CPU cores, JAX devices: "
        f"{', '.join(str(d) for d in jax.devices())}",
        "",
    ]


def run_one(name: str, out: Path) -> tuple[int, list[str]]:
    module, args, json_flag, _ = BENCHMARKS[name]
    json_path = out / f"{name}.json"
    command = [sys.executable, "-m", module, *args, json_flag, str(json_path)]
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()[0]
    lines = [
        f"## {name}",
        "",
        f"`python -m {' '.join([module, *args, json_flag, json_path.name])}`: exit "
        f"{done.returncode}, {wall:.0f} s, load average {load_before:.2f} before and "
        f"{load_after:.2f} after.",
        "",
    ]
    body = done.stdout.strip().splitlines()
    if done.returncode:
        body = (body + done.stderr.strip().splitlines())[-20:]
    if not any(row.startswith("|") for row in body):  # not a Markdown table: kept verbatim
        body = ["```", *body, "```"]
    return done.returncode, lines + body + ["", ""]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Run every benchmark and write TABLES.md.")
    p.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="these, in this order")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "latest")
    p.add_argument("--list", action="store_true", help="name the benchmarks and stop")
    args = p.parse_args(argv)
    if args.list:
        for name, (module, _, _, took) in BENCHMARKS.items():
            print(f"{name:16s} python -m {module}  (about {took} on an idle 2-core CPU)")
        return 0
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        print(f"error: --out {str(args.out)!r} cannot be created ({err.strerror})", file=sys.stderr)
        return 2
    lines, failed = header(), []
    for name in args.only or BENCHMARKS:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        status, section = run_one(name, args.out)
        lines += section
        if status:
            failed.append(name)
    tables = args.out / "TABLES.md"
    tables.write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {tables}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
