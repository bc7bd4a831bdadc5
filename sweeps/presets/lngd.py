"""Huang et al., NeurIPS 2025 (arXiv 2510.17526; docs/science.md section 7): `lngd2025`,
`lngd2025-heatmap`, label-noise GD against GD with squared ReLU in the low-SNR regime.

GD and label-noise GD share one sweep: `label_noise_gd=True` with `relabel_rate` in {0, p};
relabel_rate = 0 never flips a label, so that run is plain GD step for step. The measured
runtimes in the docstrings and docs/neighbours.md are on a 2-core CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

import noisyjax as nj
from noisyjax.analysis.plots import save, seed_band
from noisyjax.sweep import Axis, Sweep
from sweeps.presets.figures import final, mu_norms, with_snr_axis

# Huang et al. (2025): squared ReLU, orthogonal noise, clean data, label-noise GD with p = 0.1.
LNGD_CFG = dict(
    m=20,
    d=2000,
    n_test=2000,
    activation="relu_q",
    q=2.0,
    noise="orthogonal",
    label_noise_gd=True,
)
LNGD_HP = dict(mu_norm=2.0, sigma_p=0.5, sigma_0=0.01, tau_plus=0.0, tau_minus=0.0)
LNGD_P = 0.1
LNGD_METHODS = Axis("relabel_rate", (0.0, LNGD_P))  # 0: plain GD
LNGD_HEAT_N = (100, 250, 400, 550, 700)
LNGD_HEAT_SNR = (0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.10)


def snr_of(ds: xr.Dataset) -> xr.DataArray:
    """SNR = ||mu|| / (sigma_p sqrt(d)) of every run (docs/science.md section 2)."""
    return ds["mu_norm"] / (ds["sigma_p"] * np.sqrt(ds["d"]))


def lngd2025() -> tuple[Sweep, Callable]:
    """Huang et al. 2025: GD against label-noise GD in their setting (trajectories, final error).

    Command: python -m sweeps.grid --preset lngd2025
    Regime: clean training labels (tau = 0, label noise only injected by the
      optimizer): the ratio n SNR^2 (1 - 2 tau) / 2 and the Stage-I window do not apply.
    Runtime: 2 min measured on a shared 2-core CPU (2 methods x 5 seeds, 2000 steps; 86 s of
      it compiling, 11 s running).
    Setting: squared ReLU, n = 200, 2000 test points, d = 2000, m = 20, eta = 0.5, mu = 2 e_1,
      sigma_p = 0.5 (SNR 0.089, n SNR^2 = 1.6), orthogonal noise, clean training labels,
      label-noise GD flipping each label with probability p = 0.1 afresh at every step, 2000
      steps; sigma_0 = 0.01 (our choice).
    Figures:
      lngd_trajectories.png: test error, training loss, max gamma (signal learning) and the
        ratio of noise memorization to signal learning (mean over samples of max_r rho_bar,
        split by label as in Huang et al., over max gamma) of GD and label-noise GD, mean over
        seeds with min-max bands: GD fits the data by memorizing noise and its test error stays
        high; label-noise GD keeps learning the signal, its rho_bar stays bounded and its test
        error falls.
      lngd_final_error.png: final test error per seed for both methods.
    """
    cfg = nj.Config(n=200, steps=2000, log_every=20, eval_every=20, engine="auto", **LNGD_CFG)
    hp = nj.HParams(eta=0.5, **LNGD_HP)
    return Sweep("lngd2025", cfg, hp, (LNGD_METHODS,), seeds=5), lngd2025_figures


def method_name(rate: float) -> str:
    return "GD" if rate == 0 else f"label-noise GD (p={rate:g})"


def lngd2025_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    step = ds["step"].values
    fig = Figure(figsize=(6.4, 9.0), layout="constrained")
    axes = fig.subplots(4, 1, sharex=True)
    panels = (
        ("test_err", "test error"),
        ("train_loss", "training loss"),
        ("gamma_max", r"$\max_{j,r}\gamma_{j,r}$"),
        ("rho_over_gamma", r"mean$_i \max_r \bar\rho_{y_i,r,i}$ / $\max\gamma$"),
    )
    for k, rate in enumerate(ds["relabel_rate"].values):
        run = ds.sel(relabel_rate=rate)
        # Huang et al.'s view: noise memorization against signal learning, with rho_bar split
        # by label (it can fall under label-noise GD; docs/science.md section 4).
        run = run.assign(rho_over_gamma=run["rho_bar_clean"] / run["gamma_max"])
        for ax, (var, label) in zip(axes, panels, strict=True):
            seed_band(ax, step, run[var], method_name(rate), f"C{k}")
            ax.set_ylabel(label)
    axes[0].legend(fontsize=8)
    axes[-1].set_xlabel("step")
    axes[0].set_title(
        f"squared ReLU, n=200, d=2000, SNR={float(snr_of(ds).values.flat[0]):.3f}", fontsize=10
    )
    paths = [out / "lngd_trajectories.png"]
    save(fig, paths[0])

    fig = Figure(figsize=(4.8, 3.6), layout="constrained")
    ax = fig.subplots()
    for k, rate in enumerate(ds["relabel_rate"].values):
        errs = final(ds["test_err"]).sel(relabel_rate=rate).values
        ax.scatter(np.full(errs.shape, k), errs, color=f"C{k}")
        ax.annotate(
            f"mean {np.mean(errs):.3f}",
            (k, float(np.max(errs))),
            fontsize=8,
            ha="center",
            va="bottom",
        )
    ax.set_xticks(range(len(ds["relabel_rate"])))
    ax.set_xticklabels([method_name(r) for r in ds["relabel_rate"].values], fontsize=8)
    ax.set_xlim(-0.5, len(ds["relabel_rate"]) - 0.5)
    ax.set_ylabel("final test error (per seed)")
    paths.append(out / "lngd_final_error.png")
    save(fig, paths[1])
    return paths


def lngd2025_heatmap() -> tuple[Sweep, Callable]:
    """Huang et al. 2025: final test error of GD and label-noise GD over SNR x n.

    Command: python -m sweeps.grid --preset lngd2025-heatmap
    Regime: clean training labels (tau = 0): the ratio n SNR^2 (1 - 2 tau) / 2 and
      the Stage-I window do not apply.
    Runtime: 5 min measured on a shared 2-core CPU with the wishart engine (8 SNR x 5 n x 2
      methods x 1 seed = 80 runs, 1000 steps; every run is padded to n = 700, so it costs
      O(m 700^2) per step).
    Setting: as lngd2025 with their heatmap's eta = 1.0 and 1000 steps, SNR in {0.03, 0.04,
      ..., 0.10} (set through ||mu|| at d = 2000, sigma_p = 0.5) and n in {100, 250, ..., 700}.
      Their grid is finer; this resolution keeps the preset at minutes (--seeds 3 for seed
      spread, three times the time).
    Figures:
      lngd_heatmap.png: final test error of GD (left) and label-noise GD (right) over SNR (x)
        and n (y). GD errs wherever n SNR^2 is small; label-noise GD shrinks that region.
    """
    cfg = nj.Config(
        n=max(LNGD_HEAT_N),
        steps=1000,
        log_every=100,
        eval_every=100,
        engine="auto",
        snapshot_stages=(),
        **LNGD_CFG,
    )
    hp = nj.HParams(eta=1.0, **LNGD_HP)
    axes = (
        Axis("n", LNGD_HEAT_N),
        Axis("mu_norm", mu_norms(LNGD_HEAT_SNR, 2000, 0.5)),
        LNGD_METHODS,
    )
    return Sweep("lngd2025-heatmap", cfg, hp, axes, seeds=1), lngd2025_heatmap_figures


def lngd2025_heatmap_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    d, sigma_p = int(np.unique(ds["d"].values)[0]), float(np.unique(ds["sigma_p"].values)[0])
    err = with_snr_axis(final(ds["test_err"]), d, sigma_p)
    rates = err["relabel_rate"].values
    fig = Figure(figsize=(10.0, 4.2), layout="constrained")
    axes = fig.subplots(1, len(rates), sharey=True)
    snr, n = err["SNR"].values, err["n"].values
    for ax, rate in zip(np.atleast_1d(axes), rates, strict=True):
        mean = err.sel(relabel_rate=rate).mean("seed").transpose("n", "SNR")
        mesh = ax.pcolormesh(
            snr, n, mean.values, cmap="magma", vmin=0.0, vmax=0.5, shading="nearest"
        )
        ax.set_title(f"{method_name(rate)}: mean {float(mean.mean()):.3f}", fontsize=10)
        ax.set_xlabel("SNR")
    np.atleast_1d(axes)[0].set_ylabel("n")
    fig.colorbar(mesh, ax=axes, label=f"final test error (mean over {ds.sizes['seed']} seeds)")
    path = out / "lngd_heatmap.png"
    save(fig, path)
    return [path]
