"""Cao, Chen, Belkin, Gu, NeurIPS 2022 (docs/science.md section 7): `cao2022`, ReLU^q (q = 3)
without label noise, benign vs harmful overfitting as a function of n SNR^q.

The measured runtime in the docstring and docs/neighbours.md is on a 2-core CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

import noisyjax as nj
from noisyjax.analysis.plots import heatmap, save
from noisyjax.sweep import Axis, Sweep
from sweeps.presets.figures import final, mu_norms, with_snr_axis

# Cao et al. (2022): ReLU^3, orthogonal noise, no label noise.
CAO_Q = 3.0
CAO_D = 400
CAO_N = (8, 16, 32, 64, 128, 256)
CAO_SNR = tuple(float(f"{v:.4g}") for v in np.geomspace(0.1, 1.0, 9))


def cao2022() -> tuple[Sweep, Callable]:
    """Cao et al. 2022: ReLU^3 CNN without label noise, test error over n x SNR.

    Command: python -m sweeps.grid --preset cao2022
    Regime: no label noise (tau = 0): no flipped samples, so no Stage-I window by
      definition; the ratio n SNR^2 (1 - 2 tau) / 2 does not apply.
    Runtime: 2 min measured on a shared 2-core CPU (6 n x 9 SNR x 3 seeds = 162 runs, 1000
      GD steps; 66 s of it compiling).
    Setting: activation max(0, z)^3, noise N(0, I - u u^T) orthogonal to mu (their model),
      d = 400, m = 10, sigma_0 = 0.01, eta = 0.1, tau = 0; n in {8, 16, ..., 256}, SNR =
      ||mu|| / (sigma_p sqrt(d)) from 0.1 to 1, log-spaced.
    Figures:
      cao_test_error.png: final test error over n (x) and SNR (y): about 0.5 (harmful
        overfitting: noise memorized, signal not learned) below the curve n SNR^3 = const, near
        0 (benign) above it; dashed: n SNR^3 = 1.
      cao_collapse.png: every run's final test error against n SNR^3: the cells collapse onto
        one transition, as their theory says n SNR^q is the quantity that decides.
    """
    cfg = nj.Config(
        n=max(CAO_N),
        d=CAO_D,
        m=10,
        steps=1000,
        log_every=50,
        eval_every=50,
        n_test=1000,
        activation="relu_q",
        q=CAO_Q,
        noise="orthogonal",
        engine="auto",
        snapshot_stages=("final",),
    )
    hp = nj.HParams(eta=0.1, tau_plus=0.0, tau_minus=0.0, sigma_p=1.0, sigma_0=0.01)
    axes = (Axis("n", CAO_N), Axis("mu_norm", mu_norms(CAO_SNR, CAO_D, 1.0)))
    return Sweep("cao2022", cfg, hp, axes, seeds=3), cao2022_figures


def cao2022_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    d, sigma_p = int(np.unique(ds["d"].values)[0]), float(np.unique(ds["sigma_p"].values)[0])
    err = with_snr_axis(final(ds["test_err"]), d, sigma_p).rename("final test error")
    q = CAO_Q

    def overlay(ax, xs, ys) -> None:
        n = np.geomspace(xs.min(), xs.max(), 100)
        ax.plot(n, n ** (-1.0 / q), color="red", ls="--", lw=1.5, label=r"$n\,\mathrm{SNR}^3 = 1$")
        ax.set_ylim(ys.min() / 1.2, ys.max() * 1.2)
        ax.legend(loc="upper right", fontsize=8)

    paths = [
        heatmap(
            err,
            "n",
            "SNR",
            out / "cao_test_error.png",
            title="Cao et al. setting: ReLU^3, no label noise",
            overlay=overlay,
            vmin=0.0,
            vmax=0.5,
            cmap="magma",
        )
    ]
    control = (err["n"] * err["SNR"] ** q).broadcast_like(err)
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.scatter(control.values.ravel(), err.values.ravel(), s=8, alpha=0.6)
    ax.set_xscale("log")
    ax.axvline(1.0, color="red", ls="--", lw=1)
    ax.set_xlabel(r"$n\,\mathrm{SNR}^3$")
    ax.set_ylabel("final test error (every run)")
    ax.set_title("the test error is a function of n SNR^q", fontsize=10)
    paths.append(out / "cao_collapse.png")
    save(fig, paths[-1])
    return paths
