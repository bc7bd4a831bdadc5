"""The time of Kou et al.'s sequential approach to their heatmap, measured and extrapolated.

Their public code (uclaml/Benign_ReLU_CNN, `syntheticrelu.py`) draws the heatmap with three nested
Python loops, signal strength b (100 values) x patch length d (100 values) x 10 repeats, and in
each of the 100,000 iterations:

1. builds n + n_test = 1020 samples one at a time in a Python loop (label, N(0, 1) noise of
   length d, the two patches in random order, the label flipped with probability 0.1);
2. trains a fresh Conv1d(1, 2m, kernel d, stride d) + ReLU + mean over patches + per-class sum
   (m = 10) with 2-logit cross-entropy, full-batch SGD, lr 0.1, 100 steps;
3. computes the training loss and the test error.

PyTorch is not a dependency of noisyjax, so this script times a faithful re-implementation in
NumPy (float32, same shapes, same loops, the gradient written out by hand), with PyTorch's
default initialisation. When `torch` happens to be installed, `--torch` times their model and
loop in PyTorch itself instead (optional; `pip install torch`).

It times `--repeats` trainings at d = 100, 590 and 1090 (the grid's smallest, middle and largest
patch length), fits time = a + b d, and extrapolates to the 100 x 100 x 10 grid by summing the
fit over the grid's d values. The numbers are measured-then-extrapolated, not a full run.

`--check` first tests that the re-implementation is their script. On a sub-grid of their
published table (benchmarks/data/kou2023_published_test_error.csv: d in {100, 350}, every
`--check-every`-th b) it trains 10 repeats per cell as their loop does, and compares the cell
means with those of their script as published, rerun unchanged in PyTorch on the same cells
(benchmarks/data/kou2023_script_rerun.csv, 20 repeats per cell). Both are means of random
repeats, so they differ by seed error: the expected mean absolute difference is
sqrt(2 / pi) sqrt(s^2 / 10 + s'^2 / 20) averaged over the cells, s and s' each cell's standard
deviations over our and their repeats. The check passes, and the exit status is 0, when the
observed mean absolute difference is at most 1.25 times that (about 2 standard errors with 40
cells) and the mean signed difference is within 3 of its standard errors. The re-implementation,
the rerun and the `kou2023-grid` preset's cells (the wishart engine, a different realization of
the same law) are also compared the same way with their published table itself (its 10-repeat
means, their spread taken as ours). The preset runs seeds 0..9 in every cell, so the standard
error of its mean difference comes from the spread over its seeds, not over the cells. Their
table sits about 0.013 above their own script (docs/neighbours.md).

Usage:
  python -m benchmarks.bench_kou_sequential              # seconds (2 s on a 2-core CPU)
  python -m benchmarks.bench_kou_sequential --check      # plus the check: 35 s more
  python -m benchmarks.bench_kou_sequential --repeats 20 --json kou_seq.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import numpy as np

N_TRAIN, N_TEST, M, STEPS, LR, FLIP = 20, 1000, 10, 100, 0.1, 0.1
GRID_B = 100
GRID_D = [100 + 10 * t for t in range(100)]
REPEATS_PER_CELL = 10


def make_data(rng: np.random.Generator, b: float, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Their per-sample loop: (N, 2, d) patches and labels in {0, 1} (1 is y = +1)."""
    xs, labels = [], []
    for _ in range(N_TRAIN + N_TEST):
        feature = np.zeros(d, np.float32)
        feature[0] = 1.0
        y = rng.choice([-1, 1])
        xi = rng.normal(0.0, 1.0, size=d)
        x = np.stack([feature * b * y, xi])
        x = x[rng.permutation(2)]
        y = rng.choice([-1, 1], p=[FLIP, 1 - FLIP]) * y
        xs.append(x.astype(np.float32))
        labels.append(y)
    x = np.stack(xs)
    return x, (np.asarray(labels) == 1).astype(np.int64)


def torch_init(rng: np.random.Generator, d: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's Conv1d default: weights and bias uniform in +-1/sqrt(fan_in), fan_in = d."""
    bound = 1.0 / np.sqrt(d)
    w = rng.uniform(-bound, bound, size=(2 * M, d)).astype(np.float32)
    return w, rng.uniform(-bound, bound, size=2 * M).astype(np.float32)


def logits(w: np.ndarray, bias: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) logits [class 0 = first m filters, class 1 = last m] and the pre-activations."""
    pre = np.einsum("npd,kd->npk", x, w) + bias  # (N, P, 2M)
    h = np.maximum(pre, 0.0).mean(axis=1)  # mean over the 2 patches: (N, 2M)
    return np.stack([h[:, :M].sum(1), h[:, M:].sum(1)], axis=1), pre


def sgd_step(
    w: np.ndarray, bias: np.ndarray, x: np.ndarray, onehot: np.ndarray, lr: float = LR
) -> tuple[np.ndarray, np.ndarray]:
    """One full-batch SGD step on the mean 2-logit cross-entropy, gradient written out."""
    out, pre = logits(w, bias, x)
    p = np.exp(out - out.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dout = (p - onehot) / len(x)  # d mean cross-entropy / d logits
    dh = dout[:, np.repeat([0, 1], M)]  # (N, 2M): each filter feeds its class logit, weight 1
    dpre = (pre > 0) * dh[:, None, :] / 2.0  # mean over the 2 patches
    return w - lr * np.einsum("npk,npd->kd", dpre, x), bias - lr * dpre.sum(axis=(0, 1))


def train_one(rng: np.random.Generator, b: float, d: int) -> tuple[float, float]:
    """One iteration of their loop: data, a fresh model, 100 SGD steps, loss and test error."""
    x, labels = make_data(rng, b, d)
    x_tr, y_tr, x_te, y_te = x[:N_TRAIN], labels[:N_TRAIN], x[N_TRAIN:], labels[N_TRAIN:]
    w, bias = torch_init(rng, d)
    onehot = np.eye(2, dtype=np.float32)[y_tr]
    for _ in range(STEPS):
        w, bias = sgd_step(w, bias, x_tr, onehot)
    out, _ = logits(w, bias, x_tr)
    shifted = out - out.max(1, keepdims=True)
    loss = float(np.mean(np.log(np.exp(shifted).sum(1)) - shifted[np.arange(N_TRAIN), y_tr]))
    test_err = float(np.mean(logits(w, bias, x_te)[0].argmax(1) != y_te))
    return loss, test_err


def train_one_torch(rng: np.random.Generator, b: float, d: int) -> tuple[float, float]:
    """The same iteration with their PyTorch model and loop (needs torch)."""
    import torch

    x, labels = make_data(rng, b, d)
    data = torch.from_numpy(x.reshape(len(x), 1, 2 * d))
    target = torch.from_numpy(labels)
    conv = torch.nn.Conv1d(1, 2 * M, d, d)

    def forward(inp):
        h = torch.relu(conv(inp)).mean(2)
        return torch.stack([h[:, :M].sum(1), h[:, M:].sum(1)]).transpose(1, 0)

    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(conv.parameters(), lr=LR, momentum=0, weight_decay=0)
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = criterion(forward(data[:N_TRAIN]), target[:N_TRAIN])
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        loss = float(criterion(forward(data[:N_TRAIN]), target[:N_TRAIN]))
        pred = forward(data[N_TRAIN:]).argmax(1)
        err = float((pred != target[N_TRAIN:]).float().mean())
    return loss, err


DATA = Path(__file__).resolve().parent / "data"
PUBLISHED = DATA / "kou2023_published_test_error.csv"
SCRIPT_RERUN = DATA / "kou2023_script_rerun.csv"


def published() -> dict[int, np.ndarray]:
    """Their published cell means: d -> test error at b = 0.0, 0.1, ..., 9.9."""
    rows = np.loadtxt(PUBLISHED, delimiter=",", comments="#", ndmin=2)
    return {int(row[0]): row[1:] for row in rows}


def script_rerun() -> dict[tuple[float, int], np.ndarray]:
    """Their script as published, rerun unchanged on the published sub-grid (the file's header):
    (b, d) -> the test errors of its 20 repeats."""
    rows = np.loadtxt(SCRIPT_RERUN, delimiter=",", comments="#", ndmin=2)
    return {(round(float(row[1]), 1), int(row[0])): row[2:] for row in rows}


def preset_cells(cells: list[tuple[float, int]], repeats: int) -> dict[tuple[float, int], list]:
    """The kou2023-grid preset's final test errors (noisy test labels) on `cells`, per seed."""
    import dataclasses
    import tempfile

    import noisyjax as nj
    from noisyjax.sweep import Zip, run_sweep
    from sweeps.presets.kou import kou2023_grid

    sweep, _ = kou2023_grid()
    bs, ds = zip(*cells, strict=True)
    sweep = dataclasses.replace(
        sweep, axes=(Zip("point", {"mu_norm": bs, "d": ds}),), seeds=repeats
    )
    with tempfile.TemporaryDirectory() as out:
        ds_ = run_sweep(nj.plan(sweep), Path(out), progress=False)
    err = ds_["test_err_noisy_labels"].isel(step=-1).transpose("point", "seed").values
    return {cell: list(err[i]) for i, cell in enumerate(cells)}


def compare(ours: dict, theirs: dict, shared_seeds: bool = False) -> dict:
    """Mean absolute and signed differences of cell means, against what seed error gives.

    `theirs[cell]` is either a published mean of REPEATS_PER_CELL repeats, whose spread is taken
    to be ours, or the repeats themselves, whose own spread is used. With `shared_seeds` (the
    preset: every cell runs seeds 0..R-1, so one seed's errors move together across cells) the
    standard error of the mean difference comes from its spread over the seeds, not the cells."""
    diffs, expected, their_se2_per_cell = [], [], []
    for cell, errs in ours.items():
        errs = np.asarray(errs, float)
        other = np.atleast_1d(np.asarray(theirs[cell], float))
        their_var = other.var(ddof=1) if other.size > 1 else errs.var(ddof=1)
        their_n = other.size if other.size > 1 else REPEATS_PER_CELL
        diffs.append(errs.mean() - other.mean())
        their_se2_per_cell.append(their_var / their_n)
        se2 = errs.var(ddof=1) / len(errs) + their_var / their_n  # two independent means
        expected.append(math.sqrt(2 / math.pi) * math.sqrt(se2))
    diffs = np.asarray(diffs)
    mad, mad_expected = float(np.mean(np.abs(diffs))), float(np.mean(expected))
    bias, bias_se = float(diffs.mean()), float(diffs.std(ddof=1) / math.sqrt(len(diffs)))
    if shared_seeds:  # per seed: its mean difference over the cells; seeds are independent
        per_seed = np.mean(
            [np.asarray(errs, float) - np.mean(theirs[cell]) for cell, errs in ours.items()], axis=0
        )
        their_se2 = np.mean(their_se2_per_cell)  # their cells are independent of each other
        bias_se = float(math.sqrt(per_seed.var(ddof=1) / len(per_seed) + their_se2 / len(diffs)))
    return {
        "cells": len(diffs),
        "mean_abs_diff": mad,
        "expected_mean_abs_diff": mad_expected,
        "ratio": mad / mad_expected,
        "mean_diff": bias,
        "mean_diff_se": bias_se,
        "within_seed_error": bool(mad <= 1.25 * mad_expected and abs(bias) <= 3 * bias_se),
    }


def check(one, rng: np.random.Generator, every: int) -> dict:
    """This re-implementation against their script as published (rerun), and it, the preset
    and that rerun against their published table (module docstring)."""
    table = published()
    cells = [(round(0.1 * s, 1), d) for d in table for s in range(0, GRID_B, every)]
    theirs = {(b, d): float(table[d][round(b * 10)]) for b, d in cells}
    rerun = script_rerun()
    start = time.perf_counter()
    sequential = {(b, d): [one(rng, b, d)[1] for _ in range(REPEATS_PER_CELL)] for b, d in cells}
    seconds = time.perf_counter() - start
    out = {  # every checked cell is in the rerun (--check-every is a multiple of 5)
        "sequential_vs_script": compare(sequential, rerun),
        "sequential": compare(sequential, theirs),
        "script": compare({c: rerun[c] for c in cells}, theirs),
        "sequential_s": seconds,
    }
    preset = preset_cells(cells, REPEATS_PER_CELL)
    out["preset"] = compare(preset, theirs, shared_seeds=True)
    out["preset_vs_script"] = compare(preset, rerun, shared_seeds=True)
    labels = {
        "sequential_vs_script": "sequential vs their script (rerun)",
        "sequential": "sequential vs their table",
        "script": "their script (rerun) vs their table",
        "preset": "preset vs their table",
        "preset_vs_script": "preset vs their script (rerun)",
    }
    for name, label in labels.items():
        c = out[name]
        print(
            f"{label:36s} {c['cells']} cells: mean |difference| "
            f"{c['mean_abs_diff']:.4f} (seed error alone: {c['expected_mean_abs_diff']:.4f}, "
            f"ratio {c['ratio']:.2f}), mean difference {c['mean_diff']:+.4f} "
            f"+- {c['mean_diff_se']:.4f}: "
            + ("within seed error" if c["within_seed_error"] else "NOT within seed error")
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed trainings per d")
    parser.add_argument("--torch", action="store_true", help="time PyTorch (needs torch)")
    parser.add_argument("--json", default=None, help="also write the numbers here")
    parser.add_argument("--check", action="store_true", help="compare with their table first")
    parser.add_argument(
        "--check-every", type=int, default=5, help="every k-th b in the check (a multiple of 5)"
    )
    args = parser.parse_args(argv)
    if args.check_every < 1 or args.check_every % 5:
        # the rerun of their script holds every fifth b: a multiple keeps every cell in it
        parser.error(f"--check-every={args.check_every} is invalid: allowed 5, 10, 15, ...")
    one = train_one_torch if args.torch else train_one
    rng = np.random.default_rng(0)
    one(rng, 5.0, 100)  # warm-up
    checked = check(one, rng, args.check_every) if args.check else None
    per_d, errors = {}, {}
    for d in (100, 590, 1090):
        start = time.perf_counter()
        errs = [one(rng, 5.0, d)[1] for _ in range(args.repeats)]
        per_d[d] = (time.perf_counter() - start) / args.repeats
        errors[d] = float(np.mean(errs))
        print(
            f"d={d:5d}: {per_d[d] * 1e3:7.1f} ms per training (test error at b=5: {errors[d]:.3f})"
        )
    slope, intercept = np.polyfit(list(per_d), list(per_d.values()), 1)
    total = GRID_B * REPEATS_PER_CELL * float(np.sum(intercept + slope * np.asarray(GRID_D)))
    print(
        f"extrapolated to {GRID_B} b x {len(GRID_D)} d x {REPEATS_PER_CELL} repeats = "
        f"{GRID_B * len(GRID_D) * REPEATS_PER_CELL:,} trainings: {total:,.0f} s = "
        f"{total / 3600:.2f} h ({'PyTorch' if args.torch else 'NumPy re-implementation'}, "
        "one process)"
    )
    if args.json:
        record = {
            "implementation": "torch" if args.torch else "numpy",
            "seconds_per_training": {str(k): v for k, v in per_d.items()},
            "extrapolated_total_s": total,
            "repeats": args.repeats,
            "machine": platform.platform(),
            "processor": platform.processor(),
            "check": checked,
        }
        with open(args.json, "w") as f:
            json.dump(record, f, indent=2)
    return 0 if checked is None or checked["sequential_vs_script"]["within_seed_error"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
