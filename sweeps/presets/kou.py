"""Kou, Chen, Chen, Gu, ICML 2023, "Benign overfitting in two-layer ReLU convolutional neural
networks" (docs/science.md section 7): `kou2023`, `kou2023-grid`.

As in their public code: Conv1d with bias, PyTorch's default initialisation, each class logit the
sum over its m filters of the mean over the two patches, 2-logit cross-entropy, isotropic N(0, 1)
noise, labels flipped with probability 0.1 in training AND test, n = 20, m = 10, 1000 test points,
full-batch SGD, lr 0.1, 100 steps. The measured runtimes in the docstrings and docs/neighbours.md
are on a 2-core CPU.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

import noisyjax as nj
from noisyjax.analysis.plots import heatmap, save
from noisyjax.analysis.statistics import loglog_fit
from noisyjax.sweep import Axis, Sweep
from noisyjax.sweep.refine import load_refinement
from noisyjax.sweep.spec import Refine
from noisyjax.synthetic.config import HPARAM_FIELDS
from noisyjax.synthetic.theory import kou_boundary_mu_norm
from sweeps.presets.figures import final, write_summary

# Their public code, uclaml/Benign_ReLU_CNN.
KOU_CFG = dict(
    n=20,
    m=10,
    n_test=1000,
    steps=100,
    noise="isotropic",
    flip="bernoulli",
    bias=True,
    init="torch",
    output_scale="kou",
)
KOU_HP = dict(eta=0.1, tau_plus=0.1, tau_minus=0.1, sigma_p=1.0)
KOU_B = tuple(round(0.1 * s, 1) for s in range(100))  # signal strength b = ||mu||: 0, ..., 9.9
KOU_D = tuple(100 + 10 * t for t in range(100))  # patch length d: 100, ..., 1090
KOU_THRESHOLD = 0.2  # their second figure: test error > 0.2


def kou2023() -> tuple[Sweep, Callable]:
    """Kou et al. 2023, one run of their code's single-run setting (b = 5, d = 100).

    Command: python -m sweeps.grid --preset kou2023
    Regime: ratio n SNR^2 (1 - 2 tau) / 2 = 2.0 (n SNR^2 = 5, tau = 0.1), above the
      boundary measured from a Gaussian init; their PyTorch init is far larger (uniform
      +-1/sqrt(d)), where that boundary does not apply.
    Runtime: 42 s measured on a shared 2-core CPU (1 run, 100 steps logged every step; almost
      all of it compilation and the margin replay).
    Setting: their public code: Conv1d(1, 2m, kernel d, stride d) with bias, PyTorch's default
      initialisation, logits = per class the sum over m = 10 filters of the mean over the two
      patches, 2-logit cross-entropy (= logistic loss of y f), full-batch SGD lr 0.1, 100
      steps, n = 20, 1000 test points, isotropic N(0, 1) noise, signal b y e_1 with b = 5,
      labels flipped with probability 0.1 in training and test. Dense engine (exact draw in R^d).
    Figures:
      kou_margins.png: their first figure: the largest and the smallest (the margin) y f over
        the training set and their difference, per step. The margin turns positive when every
        training sample, flipped ones included, is fitted.
      kou_loss_error.png: their second figure: training loss and test error w.r.t. the noisy
        test labels (their measure; the Bayes error is 0.1), plus the true-label test error.
    """
    cfg = nj.Config(d=100, log_every=1, engine="dense", **KOU_CFG)
    hp = nj.HParams(mu_norm=5.0, **KOU_HP)
    return Sweep("kou2023", cfg, hp, (), seeds=1), kou2023_figures


def sweep_config(out: Path) -> nj.Config:
    """The resolved static config of the sweep written in `out` (command-line overrides kept)."""
    return Sweep.from_dict(json.loads((out / "config.json").read_text())["sweep"]).cfg


def replay_margins(cfg: nj.Config, hp: nj.HParams, seed: int) -> np.ndarray:
    """y_obs f of every training sample at steps 0..cfg.steps: (T + 1, N).

    The sweep logs subset summaries, not margins, so the figure replays the run: the same keys
    as `make_train` (data, init), the same data and weights, full-batch GD on the same loss.
    Exact for the dense engine and plain GD; the figure checks it against the logged loss.
    """
    k_data, k_init = jax.random.split(jax.random.key(seed), 3)[:2]
    train = nj.sample(k_data, cfg, hp, split="train")
    params = nj.init_params(k_init, cfg, hp)

    def loss(p: dict) -> jax.Array:
        return jnp.mean(jax.nn.softplus(-train.y_obs * nj.apply(p, train.x, cfg)))

    def step(p: dict, _) -> tuple[dict, jax.Array]:
        z_N = train.y_obs * nj.apply(p, train.x, cfg)
        g = jax.grad(loss)(p)
        return jax.tree.map(lambda a, b: a - hp.eta * b, p, g), z_N

    _, z_TN = jax.jit(lambda p: jax.lax.scan(step, p, None, length=cfg.steps + 1))(params)
    return np.asarray(z_TN)


def kou2023_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    run = ds.isel(seed=0)
    step = run["step"].values
    cfg = sweep_config(out)
    hp = nj.HParams(**{f: float(run[f]) for f in HPARAM_FIELDS})
    z_TN = replay_margins(cfg, hp, int(run["seed"]))[step]
    replayed_loss = np.log1p(np.exp(-z_TN)).mean(axis=1)
    if not np.allclose(replayed_loss, run["train_loss"].values, rtol=1e-3, atol=1e-5):
        raise RuntimeError("kou2023: the replayed run does not match the logged training loss")
    largest, smallest = z_TN.max(axis=1), z_TN.min(axis=1)
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.plot(step, largest, label="largest $y f$")
    ax.plot(step, smallest, label="smallest $y f$ (margin)")
    ax.plot(step, largest - smallest, label="difference (largest - smallest)")
    ax.axhline(0.0, color="gray", lw=0.8)
    ax.set_xlabel("iteration")
    ax.set_ylabel("function value")
    ax.set_title(f"Kou et al. setting: n=20, d={int(run.d)}, b={float(run.mu_norm):g}", fontsize=10)
    ax.legend(fontsize=8)
    paths = [out / "kou_margins.png"]
    save(fig, paths[0])

    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.plot(step, run["train_loss"], label="training loss")
    ax.plot(step, run["test_err_noisy_labels"], label="test error (noisy test labels)")
    ax.plot(step, run["test_err"], label="test error (true labels)", ls=":")
    ax.axhline(float(run["tau_plus"]), color="gray", ls="--", lw=0.8, label="flip rate 0.1")
    ax.set_xlabel("iteration")
    ax.set_ylabel("value")
    ax.set_title("training loss and test error", fontsize=10)
    ax.legend(fontsize=8)
    paths.append(out / "kou_loss_error.png")
    save(fig, paths[1])
    return paths


def kou2023_grid() -> tuple[Sweep, Callable]:
    """Kou et al. 2023, their full figure: 100 b x 100 d x 10 repeats = 100,000 trainings.

    Command: python -m sweeps.grid --preset kou2023-grid --out checkpoints/kou2023-grid
    Regime: ratio n SNR^2 (1 - 2 tau) / 2 = 8 b^2 / d, from 0 to 7.8 over the grid,
      with their large PyTorch init (the measured Stage-I boundary does not apply).
    Runtime: 2 min 30 s to 3 min 16 s measured on idle 2-core CPUs with the wishart engine
      (the latter: 14 s compiling, 174 s running; 25 min while the machine was shared with
      other jobs); where the time goes: benchmarks/profile_kou.py (docs/performance.md). Their
      sequential loop, 2 h extrapolated from benchmarks/bench_kou_sequential.py
      (docs/neighbours.md).
    Setting: as `kou2023`, over signal strength b = ||mu|| in {0, 0.1, ..., 9.9} and patch
      length d in {100, 110, ..., 1090}, 10 seeds per cell, test error w.r.t. the noisy test
      labels after 100 steps. Only the start and the end are logged; no stage checkpoints.
    Figures:
      kou_grid_test_error.png: mean test error (noisy test labels) over b (x) and d (y, growing
        upwards), their orientation and colour map: near 0.5 at small b, near the flip rate 0.1
        at large b, the transition moving to larger b as d grows.
      kou_grid_threshold.png: cells with test error > 0.2 (their truncated heatmap), with the
        boundary n b^4 = C d fitted to it (their benign/harmful condition n ||mu||^4 vs
        sigma_p^4 d).
    """
    cfg = nj.Config(
        d=max(KOU_D),
        log_every=100,
        eval_every=100,
        engine="auto",
        snapshot_stages=(),
        **KOU_CFG,
    )
    hp = nj.HParams(mu_norm=5.0, **KOU_HP)
    axes = (Axis("mu_norm", KOU_B), Axis("d", KOU_D))
    return Sweep("kou2023-grid", cfg, hp, axes, seeds=10), kou2023_grid_figures


def boundary_fit(err: xr.DataArray, n: int, threshold: float = KOU_THRESHOLD) -> dict:
    """Fit d = n b^4 / C to the threshold crossings of the mean error: for each d, b* is the
    smallest b from which the error stays <= threshold; C = median of n b*^4 / d."""
    mean = err.mean("seed").transpose("d", "mu_norm")
    bs, ds = mean["mu_norm"].values, mean["d"].values
    crossing = []
    for row in mean.values > threshold:
        above = np.nonzero(row)[0]
        crossing.append(bs[above[-1] + 1] if len(above) and above[-1] + 1 < len(bs) else np.nan)
    b_star = np.asarray(crossing, float)
    ok = np.isfinite(b_star) & (b_star > 0)
    c = float(np.median(n * b_star[ok] ** 4 / ds[ok])) if ok.any() else float("nan")
    # The exponent of b* in d (theory: 1/4), with a 95% interval.
    slope = loglog_fit({"d": ds[ok]}, b_star[ok]) if ok.sum() > 2 else None
    return {"C": c, "slope": slope, "b_star": b_star, "d": ds}


def kou2023_grid_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    err = final(ds["test_err_noisy_labels"]).rename("test error (noisy test labels)")
    n = int(np.unique(ds["n"].values)[0])
    fit = boundary_fit(err, n)
    slope = fit["slope"]
    exponent = (
        f"{slope.coef[1]:.3f} [{slope.ci_low[1]:.3f}, {slope.ci_high[1]:.3f}] (theory 0.25)"
        if slope is not None
        else "(no crossing)"
    )

    def overlay(ax, xs, ys) -> None:
        d = np.linspace(ys.min(), ys.max(), 200)
        ax.plot(
            kou_boundary_mu_norm(n, 1.0, d, fit["C"]),
            d,
            color="red",
            ls="--",
            lw=1.5,
            label=f"$n b^4 = {fit['C']:.0f}\\,d$ (fit)",
        )
        ax.set_xlim(xs.min() - 0.05, xs.max() + 0.05)
        ax.legend(loc="upper left", fontsize=8)

    paths = [
        heatmap(
            err,
            "mu_norm",
            "d",
            out / "kou_grid_test_error.png",
            title="Kou et al. setting: test error heatmap",
            cmap="YlGnBu",
            vmin=0.0,
            vmax=1.0,
        ),
        heatmap(
            (err > KOU_THRESHOLD)
            .astype(float)
            .rename(f"fraction of seeds with error > {KOU_THRESHOLD}"),
            "mu_norm",
            "d",
            out / "kou_grid_threshold.png",
            title=f"test error > {KOU_THRESHOLD}; fitted b* ~ d^{exponent}",
            cmap="YlGnBu",
            vmin=0.0,
            vmax=1.0,
            overlay=overlay,
        ),
    ]
    return paths


KOU_B_COARSE = tuple(round(2.475 * s, 3) for s in range(5))  # 0, 2.475, ..., 9.9


def kou2023_boundary() -> tuple[Sweep, Callable]:
    """Kou et al. 2023, their boundary located by refinement: b* at each of their 100 d values.

    Command: python -m sweeps.grid --preset kou2023-boundary
    Regime: as `kou2023-grid`; the crossing of test error 0.2 moves from b ~ 2.5 at d = 100
      to b ~ 4.5 at d = 1090.
    Runtime: about 35 s (45 s with a cold compilation cache) measured on an idle 2-core CPU
      (benchmarks/bench_refine.py runs it beside kou2023-grid: docs/refine.md).
    Setting: as `kou2023-grid`, with b on 5 values of their range (0, 2.475, ..., 9.9) x their
      100 d values x 10 seeds, then 5 bisection rounds of one probe per d: at most 10,000
      trainings instead of 100,000, to a bracket of 2.475 / 32 = 0.077 in b.
      Refined: where the seed mean of the test error w.r.t. the noisy test labels crosses
      their threshold 0.2 (the last crossing along b).
    Figures:
      boundary.png: the located b* with its 95% bootstrap interval at every d, over the
        coarse grid's mean test error.
      kou_boundary_fit.png: b* against d on log axes with the fitted n b^4 = C d (their
        condition n ||mu||^4 vs sigma_p^4 d: slope 1/4).
      summary.json: the fitted C and exponent with their intervals, the cells located.
    """
    sweep, _ = kou2023_grid()
    refine = Refine("test_err_noisy_labels", KOU_THRESHOLD, "mu_norm", rounds=5)
    axes = (Axis("mu_norm", KOU_B_COARSE), Axis("d", KOU_D))
    sweep = dataclasses.replace(sweep, name="kou2023-boundary", axes=axes, refine=refine)
    return sweep, kou2023_boundary_figures


def kou2023_boundary_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    boundary = load_refinement(out)
    n = int(np.unique(ds["n"].values)[0])
    b_star = boundary["crossing"].values
    d = boundary["d"].values.astype(float)
    ok = np.isfinite(b_star) & (b_star > 0)
    c = float(np.median(n * b_star[ok] ** 4 / d[ok]))
    slope = loglog_fit({"d": d[ok]}, b_star[ok])
    low, high = boundary["crossing_low"].values, boundary["crossing_high"].values
    has = ok & np.isfinite(low)
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    ax.errorbar(
        d[has],
        b_star[has],
        yerr=[b_star[has] - low[has], high[has] - b_star[has]],
        fmt="o",
        ms=2.5,
        lw=0.6,
        label="located $b^*$ (95% bootstrap interval)",
    )
    grid = np.geomspace(d.min(), d.max(), 100)
    ax.plot(grid, kou_boundary_mu_norm(n, 1.0, grid, c), "r--", label=f"$n b^4 = {c:.0f}\\,d$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("patch length d")
    ax.set_ylabel(f"b* (test error = {KOU_THRESHOLD})")
    ax.set_title(
        f"b* ~ d^{slope.coef[1]:.3f} [{slope.ci_low[1]:.3f}, {slope.ci_high[1]:.3f}] (theory 0.25)",
        fontsize=10,
    )
    ax.legend(fontsize=8)
    path = out / "kou_boundary_fit.png"
    save(fig, path)
    summary = {
        "C": c,
        "exponent": [slope.coef[1], slope.ci_low[1], slope.ci_high[1]],
        "cells_located": int(ok.sum()),
        "cells": int(b_star.size),
        "runs": int(boundary.attrs["runs"]),
        "full_grid_runs": int(boundary.attrs["full_grid_runs"]),
    }
    return [path, write_summary(out, summary)]
