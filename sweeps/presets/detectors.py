"""Noisy-label detectors against the truth, along training and over a phase diagram
(docs/detectors.md): `detectors`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

import noisyjax as nj
from noisyjax.analysis import detectors as det
from noisyjax.analysis.plots import save
from noisyjax.sweep import Axis, Sweep
from sweeps.presets.figures import write_summary
from sweeps.presets.story import N_SNR2, TAU, D, N

TAU_HAT = 0.2  # the small-loss rule's assumed noise rate: a practitioner's guess
NAMES = ("small-loss (tau_hat 0.2)", "log 2", "AUM", "GMM", "confident learning")


def detectors_preset() -> tuple[Sweep, Callable]:
    """Five noisy-label detectors scored against the true flips, in the whole-story setting
    and over tau x n SNR^2, with LabelWave's validation-free stopping point.

    Command: python -m sweeps.grid --preset detectors
    Setting: the whole-story run (n = 200, d = 300, m = 20, sigma_0 = 0.001, eta = 0.2, exact
      flips, 600 GD steps) over tau in {0.1, 0.2, 0.3} x n SNR^2 in {4, 8, 16} (ratio
      n SNR^2 (1 - 2 tau)/2 from 0.8 to 6.4), 2 seeds, every sample's loss and margin logged
      every 5 steps (log_samples).
    Runtime: 40 s measured on an idle 2-core CPU (50 s with an empty compilation cache; 18
      runs, then the detectors).
    Figures:
      detectors_time.png: in the whole-story cell (tau = 0.3, n SNR^2 = 16), each detector's
        F1 against the true clean set along training, per seed, with the Stage-I window
        (t_stage1 to t_memorize) shaded and LabelWave's stopping step marked: every detector
        near 1 inside the window, decaying as the flipped samples are memorized.
      detectors_map.png: per detector, over tau x n SNR^2, the seed mean of its best F1 along
        training (top) and of its F1 at LabelWave's stopping step (bottom).
      summary.json: per seed of the whole-story cell, each detector's precision and recall in
        the middle and at the end of the Stage-I window and at the end of training,
        the noise rate each kept set implies and confident learning's estimates there,
        and the stopping steps of LabelWave and of each detector's kept set (the start of its
        first plateau) with the true-label test error there, against t_best's.
    """
    cfg = nj.Config(
        n=N, d=D, m=20, steps=600, log_every=5, n_test=2000, flip="exact", log_samples=True
    )
    hp = nj.HParams(eta=0.2, sigma_p=1.0, sigma_0=0.001)
    axes = (Axis("tau", (0.1, 0.2, TAU)), Axis("n_snr2", (4.0, 8.0, N_SNR2)))
    return Sweep("detectors", cfg, hp, axes, seeds=2), detectors_figures


def run_detections(run: xr.Dataset) -> dict:
    """Every detector on one run's records; F1, precision, recall and AUROC per logged step."""
    loss = run["sample_loss"].transpose("step", "sample").values
    margin = run["sample_margin"].transpose("step", "sample").values
    label = run["sample_label"].values
    flipped = run["sample_flipped"].values.astype(bool)
    cl, rates = det.confident_learning(margin, label)
    detections = dict(
        zip(
            NAMES,
            (
                det.small_loss(loss, TAU_HAT),
                det.log2_rule(loss),
                det.aum(margin),
                det.gmm(loss),
                cl,
            ),
            strict=True,
        )
    )
    return {
        "scores": {name: det.evaluate(d, flipped) for name, d in detections.items()},
        "rates": rates,
        "stop": det.labelwave(margin, label),
        "set_stops": {name: det.stable_set_stop(d) for name, d in detections.items()},
        "implied_rates": {name: det.implied_noise_rate(d) for name, d in detections.items()},
    }


def at(step: np.ndarray, value: float) -> int:
    """The logged index nearest to a step (the last one when the step was never reached)."""
    return int(np.argmin(np.abs(step - value))) if np.isfinite(value) else len(step) - 1


def detectors_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    step = ds["step"].values
    # Every run's detections, once: (tau index, n_snr2 index) -> one per seed.
    found_all = {
        (i, j): [run_detections(ds.isel(tau=i, n_snr2=j, seed=s)) for s in range(ds.sizes["seed"])]
        for i, j in np.ndindex(ds.sizes["tau"], ds.sizes["n_snr2"])
    }
    whole = (int(np.argmax(ds["tau"].values)), ds.sizes["n_snr2"] - 1)
    cell = ds.isel(tau=whole[0], n_snr2=whole[1])
    fig = Figure(figsize=(11.0, 3.6), layout="constrained")
    axes = fig.subplots(1, cell.sizes["seed"], sharey=True, squeeze=False)[0]
    rows = []
    for ax, s in zip(axes, range(cell.sizes["seed"]), strict=True):
        run = cell.isel(seed=s)
        found = found_all[whole][s]
        start, end = float(run["t_stage1"]), float(run["t_memorize"])
        if np.isfinite(start) and np.isfinite(end):
            ax.axvspan(start, end, color="tab:green", alpha=0.15, label="Stage-I window")
        for name, scores in found["scores"].items():
            ax.plot(step, scores["f1"], lw=1.2, label=name)
        stop = step[found["stop"]]
        ax.axvline(stop, color="k", ls="--", lw=0.8, label="LabelWave stop")
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(0, step.max())
        ax.set_xlabel("GD step")
        ax.set_title(f"seed {int(run['seed'])}", fontsize=9)
        middle = at(step, (start + end) / 2) if np.isfinite(end) else len(step) - 1
        points = {"window middle": middle, "t_memorize": at(step, end), "end": len(step) - 1}
        test_err = run["test_err"].values
        rows.append(
            {
                "seed": int(run["seed"]),
                "t_stage1": start,
                "t_memorize": end,
                "detectors": {
                    name: {
                        where: {
                            "step": int(step[i]),
                            "precision": float(scores["precision"][i]),
                            "recall": float(scores["recall"][i]),
                            "f1": float(scores["f1"][i]),
                            "auroc": float(scores["auroc"][i]),
                            "implied_noise_rate": float(found["implied_rates"][name][i]),
                        }
                        for where, i in points.items()
                    }
                    for name, scores in found["scores"].items()
                },
                "confident_learning_rates": {
                    where: [
                        float(found["rates"].tau_plus_T[i]),
                        float(found["rates"].tau_minus_T[i]),
                    ]
                    for where, i in points.items()
                },
                "stable_set_stops": {
                    name: {"step": int(step[i]), "test_err": float(test_err[i])}
                    for name, i in found["set_stops"].items()
                },
                "labelwave": {
                    "step": int(stop),
                    "test_err": float(test_err[found["stop"]]),
                    "t_best": float(run["t_best"]),
                    "best_test_err": float(np.nanmin(test_err)),
                    "final_test_err": float(test_err[-1]),
                },
            }
        )
    axes[0].set_ylabel("F1 of the kept set (clean = positive)")
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(
        f"detectors against the true flips, tau = {float(cell['tau']):g}, "
        f"n SNR^2 = {float(cell['n_snr2']):g}",
        fontsize=10,
    )
    paths = [out / "detectors_time.png"]
    save(fig, paths[0])
    paths.append(phase_maps(ds, found_all, out))
    paths.append(write_summary(out, {"tau_hat": TAU_HAT, "whole_story_cell": rows}))
    return paths


def phase_maps(ds: xr.Dataset, found_all: dict, out: Path) -> Path:
    """Best F1 along training and F1 at LabelWave's stop, seed means, per detector."""
    taus, snrs = ds["tau"].values, ds["n_snr2"].values
    best = np.full((len(NAMES), len(taus), len(snrs)), np.nan)
    stopped = np.full_like(best, np.nan)
    for i, j in np.ndindex(len(taus), len(snrs)):
        found = found_all[i, j]
        for k, name in enumerate(NAMES):
            best[k, i, j] = np.mean([np.nanmax(f["scores"][name]["f1"]) for f in found])
            stopped[k, i, j] = np.mean([f["scores"][name]["f1"][f["stop"]] for f in found])
    fig = Figure(figsize=(13.0, 5.4), layout="constrained")
    axes = fig.subplots(2, len(NAMES), sharex=True, sharey=True)
    for k, name in enumerate(NAMES):
        for row, (values, what) in enumerate(((best, "best F1"), (stopped, "F1 at LabelWave"))):
            ax = axes[row, k]
            image = ax.imshow(
                values[k], origin="lower", vmin=0.5, vmax=1.0, cmap="viridis", aspect="auto"
            )
            for i, j in np.ndindex(len(taus), len(snrs)):
                ax.text(
                    j,
                    i,
                    f"{values[k, i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="w" if values[k, i, j] < 0.8 else "k",
                )
            ax.set_xticks(range(len(snrs)), [f"{v:g}" for v in snrs])
            ax.set_yticks(range(len(taus)), [f"{v:g}" for v in taus])
            ax.set_title(f"{name}\n{what}" if row == 0 else what, fontsize=8)
            if row == 1:
                ax.set_xlabel(r"$n\,\mathrm{SNR}^2$")
            if k == 0:
                ax.set_ylabel(r"noise rate $\tau$")
    fig.colorbar(image, ax=axes, shrink=0.8, label="F1 (seed mean)")
    path = out / "detectors_map.png"
    save(fig, path)
    return path
