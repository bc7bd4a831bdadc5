"""Figures that put measurements next to the theory (docs/science.md section 6).

Built on matplotlib.figure.Figure directly, like `noisyjax.analysis.plots`: no pyplot state.
Every function takes plain arrays or xarray objects and writes one PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from noisyjax.analysis.plots import save, seed_band
from noisyjax.analysis.statistics import LinearFit

# The markers drawn on the story figure, with their colours (docs/stages.md).
STORY_MARKERS = {
    "t_stage1": "tab:green",
    "t_cross_flipped": "tab:olive",
    "t_memorize": "tab:red",
    "t_clean": "tab:purple",
    "t_overtake": "tab:brown",
    "t_half_flipped": "tab:orange",
    "t2": "tab:gray",
    "t_best": "black",
}


def marker_medians(run: xr.Dataset) -> dict[str, float]:
    """Each marker's median over the seeds that reach it (NaN when none does)."""
    out = {}
    for name in STORY_MARKERS:
        v = np.asarray(run[name].values, float).ravel()
        v = v[v >= 0]
        out[name] = float(np.median(v)) if v.size else float("nan")
    return out


def story_layout(runs: dict[str, xr.Dataset], path: Path, title: str) -> Path:
    """The two stages in three rows (one column per setting, seeds as mean and min-max band):
    max gamma and the noise memorization of clean and flipped samples; overall, clean and
    flipped training accuracy (observed labels); true- and noisy-label test error. Vertical
    lines at each marker's median over seeds, the Stage-I window shaded; the marker legend sits
    under the panels, so labels never overlap the curves or each other."""
    fig = Figure(figsize=(5.6 * len(runs), 10.0), layout="constrained")
    axes = fig.subplots(3, len(runs), sharex=True, squeeze=False)
    for col, (name, run) in enumerate(runs.items()):
        top, mid, low = axes[:, col]
        x = run["step"].values
        seed_band(top, x, run["gamma_max"], r"$\max_{j,r}\gamma_{j,r}$ (signal)", "C0")
        seed_band(top, x, run["rho_bar_clean"], r"$\bar\rho$ clean (mean of $\max_r$)", "C2")
        seed_band(top, x, run["rho_bar_noisy"], r"$\bar\rho$ flipped (mean of $\max_r$)", "C3")
        seed_band(mid, x, run["train_acc"], "train, all", "C0")
        seed_band(mid, x, run["train_acc_clean"], "train, clean", "C2")
        seed_band(mid, x, run["train_acc_noisy"], "train, flipped (observed labels)", "C3")
        seed_band(low, x, run["test_err"], "test error, true labels", "k")
        seed_band(low, x, run["test_err_noisy_labels"], "test error, noisy labels", "C1", "--")
        mid.set_ylim(-0.03, 1.03)
        low.set_ylim(bottom=0)
        top.set_title(name, fontsize=10)
        medians = marker_medians(run)
        start, end = medians["t_stage1"], medians["t_memorize"]
        handles = {}
        for ax in (top, mid, low):
            if np.isfinite(start):
                ax.axvspan(start, end if np.isfinite(end) else x[-1], color="tab:green", alpha=0.08)
            for marker, t in medians.items():
                if np.isfinite(t):
                    ls = (0, (1, 3)) if marker == "t_best" else ":"  # t_best often = t_stage1
                    line = ax.axvline(t, color=STORY_MARKERS[marker], ls=ls, lw=1.4)
                    handles.setdefault(marker, line)
            ax.set_xscale("symlog", linthresh=10)
            ax.set_xlim(0, x[-1])
        low.set_xlabel("GD step (linear to 10, then log)")
        # Each column's markers in a legend under it: labels never overlap curves or each other.
        labels = [f"{m} = {medians[m]:g}" for m in handles]
        never = [m for m, t in medians.items() if not np.isfinite(t)]
        heading = "marker (median over seeds)" + (f"\nnever: {', '.join(never)}" if never else "")
        low.legend(
            list(handles.values()),
            labels,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.28),
            ncol=3,
            fontsize=8,
            title=heading,
            title_fontsize=8,
        )
    axes[0, 0].set_ylabel("coefficient")
    axes[1, 0].set_ylabel("training accuracy")
    axes[2, 0].set_ylabel("test error")
    for row in axes[:2, 0]:
        row.legend(fontsize=8, loc="upper left")
    axes[2, 0].add_artist(axes[2, 0].get_legend())
    axes[2, 0].legend(fontsize=8, loc="upper left")
    fig.suptitle(title + "\nshaded: the Stage-I window [t_stage1, t_memorize)", fontsize=10)
    save(fig, path)
    return path


def exponents(
    fits: dict[str, LinearFit], theory: dict[str, float], path: Path, title: str, note: str = ""
) -> Path:
    """Fitted power-law exponents with confidence intervals, one marker per time definition,
    against the theory's exponents (black bars)."""
    names = list(theory)
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(names))
    ax.scatter(
        x, [theory[k] for k in names], marker="_", s=900, color="k", label="theory", zorder=3
    )
    width = 0.6 / max(len(fits), 1)
    for i, (label, fit) in enumerate(fits.items()):
        idx = [fit.names.index(k) for k in names]
        offset = (i - (len(fits) - 1) / 2) * width
        coef = fit.coef[idx]
        err = np.stack([coef - fit.ci_low[idx], fit.ci_high[idx] - coef])
        ax.errorbar(x + offset, coef, yerr=err, fmt="o", capsize=3, label=label, color=f"C{i}")
    ax.axhline(0, color="gray", lw=0.5)
    ax.set_xticks(x, names)
    ax.set_ylabel("log-log slope (95% CI)")
    if note:
        ax.text(0.02, 0.02, note, transform=ax.transAxes, fontsize=8, va="bottom")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    save(fig, path)
    return path


def collapse(
    predicted_R: np.ndarray, measured: dict[str, np.ndarray], path: Path, title: str
) -> Path:
    """Measured times against the theory's scale n m / (eta sigma_p^2 d), log-log, with the
    slope-1 line through each definition's median ratio."""
    fig = Figure(figsize=(5.6, 4.6), layout="constrained")
    ax = fig.subplots()
    grid = np.geomspace(np.nanmin(predicted_R) / 1.2, np.nanmax(predicted_R) * 1.2, 50)
    for i, (label, t_R) in enumerate(measured.items()):
        ok = np.isfinite(t_R) & (t_R > 0)
        ax.scatter(predicted_R[ok], t_R[ok], s=12, color=f"C{i}", label=label, alpha=0.7)
        if np.unique(t_R[ok]).size > 1:  # a constant time has no slope to show
            ratio = np.median(t_R[ok] / predicted_R[ok])
            ax.plot(grid, ratio * grid, color=f"C{i}", lw=1, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(r"theory scale $n m / (\eta \sigma_p^2 d)$")
    ax.set_ylabel("measured step")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    save(fig, path)
    return path


def errors_vs_ratio(
    ratio_X: np.ndarray,
    errors: dict[str, np.ndarray],
    fits: dict[str, tuple[float, float]],
    path: Path,
    title: str,
    floor: float,
    top_axis: tuple[str, float] | None = None,
    bound: tuple[str, float] | None = None,
) -> Path:
    """Test errors (seeds on the last axis: mean and min-max) against d/n on a log scale, with
    fitted A exp(-c d/n) curves (`fits`: label -> (A, c)). Zeros are drawn at `floor`.
    `top_axis` (label, factor) adds a top axis proportional to d/n (e.g. Kou et al.'s ratio);
    `bound` (label, value) a horizontal reference line (e.g. the Stage-II lower bound)."""
    fig = Figure(figsize=(6.6, 6.0), layout="constrained")
    ax = fig.subplots()
    markers = "os^vDP*X"
    for i, (label, err_XS) in enumerate(errors.items()):
        with np.errstate(all="ignore"):
            mean = np.nanmean(err_XS, axis=-1)
            low, high = np.nanmin(err_XS, axis=-1), np.nanmax(err_XS, axis=-1)
        shift = 1 + 0.015 * (i - len(errors) / 2)  # keep overlapping markers apart
        ax.errorbar(
            ratio_X * shift,
            np.maximum(mean, floor),
            yerr=[
                np.maximum(mean, floor) - np.maximum(low, floor),
                np.maximum(high, floor) - np.maximum(mean, floor),
            ],
            fmt=markers[i % len(markers)] + "-",
            ms=4,
            lw=1,
            capsize=2,
            color=f"C{i}",
            label=label,
        )
    grid = np.linspace(ratio_X.min(), ratio_X.max(), 100)
    for j, (label, (scale, rate)) in enumerate(fits.items()):
        ax.plot(
            grid,
            scale * np.exp(-rate * grid),
            color="k",
            ls=("--", ":")[j % 2],
            lw=1,
            label=f"fit {label}: {scale:.2g} exp(-{rate:.2g} d/n)",
        )
    ax.axhline(floor, color="gray", lw=0.5)
    if bound is not None:
        ax.axhline(bound[1], color="C7", ls="-.", lw=1, label=bound[0])
    ax.set_yscale("log")
    ax.set_ylim(floor / 2, None)  # the fitted curves would otherwise set the scale
    ax.set_xlabel("d / n")
    if top_axis is not None:
        label, factor = top_axis
        top = ax.secondary_xaxis("top", functions=(lambda r: r * factor, lambda k: k / factor))
        top.set_xlabel(label, fontsize=8)
    ax.set_ylabel(f"true-label test error (0 drawn at {floor:g})")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    ax.set_title(title, fontsize=10)
    save(fig, path)
    return path


def selection_curves(
    step_T: np.ndarray, curves: dict[str, xr.DataArray], t1: float, path: Path, title: str
) -> Path:
    """Precision, recall, F1 (panels) of each selection rule along training, and AUROC."""
    fig = Figure(figsize=(11.0, 3.6), layout="constrained")
    axes = fig.subplots(1, 4, sharex=True)
    for k, score in enumerate(("precision", "recall", "f1")):
        ax = axes[k]
        for i, (label, ds) in enumerate(curves.items()):
            if score in ds:
                seed_band(ax, step_T, ds[score], label, f"C{i}")
        ax.set_title(score, fontsize=10)
        ax.set_ylim(-0.02, 1.02)
    for i, (label, ds) in enumerate(curves.items()):
        if "auroc" in ds:
            seed_band(axes[3], step_T, ds["auroc"], label, f"C{i}")
    axes[3].set_title("AUROC of loss (flipped vs clean)", fontsize=10)
    axes[3].set_ylim(0.4, 1.02)
    for ax in axes:
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(0, step_T[-1])
        ax.set_xlabel("step")
        if np.isfinite(t1):
            ax.axvline(t1, color="gray", ls="--", lw=1)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(title, fontsize=10)
    save(fig, path)
    return path


def retrain_bars(errors: dict[str, np.ndarray], path: Path, title: str) -> Path:
    """Final test error of each training set (mean over seeds, dots for each seed)."""
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    for i, err_S in enumerate(errors.values()):
        ax.bar(i, np.nanmean(err_S), color=f"C{i}", alpha=0.6)
        ax.scatter(np.full(len(err_S), i), err_S, color="k", s=10, zorder=3)
    ax.set_xticks(np.arange(len(errors)), list(errors), fontsize=8, rotation=10)
    ax.set_ylabel("final true-label test error")
    ax.set_title(title, fontsize=10)
    save(fig, path)
    return path
