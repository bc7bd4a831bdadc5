"""Figures: heatmaps over any two sweep axes, and training curves in the paper's layout."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

# Figures are built on matplotlib.figure.Figure directly: no pyplot state, no backend switch,
# so importing noisyjax never changes a notebook's inline plotting.
Overlay = Callable[[Axes, np.ndarray, np.ndarray], None]

# Axis labels in words and symbols for the usual sweep axes; other names use the long_name that
# results.nc records for them (noisyjax/synthetic/variables.py).
SYMBOLS = {
    "tau": r"noise rate $\tau$",
    "tau_plus": r"$\tau_+$",
    "tau_minus": r"$\tau_-$",
    "n_snr2": r"$n\,\mathrm{SNR}^2$",
    "eta": r"step size $\eta$",
    "mu_norm": r"signal strength $\|\mu\|$",
    "sigma_p": r"noise scale $\sigma_p$",
    "sigma_0": r"initialization $\sigma_0$",
    "n": "training samples n",
    "d": "dimension d",
    "m": "filters per class m",
}


def axis_label(da: xr.DataArray | xr.Dataset, name: str) -> str:
    """A figure's label for a coordinate or variable of the results."""
    if name in SYMBOLS:
        return SYMBOLS[name]
    attrs = da[name].attrs if name in da.coords or name in getattr(da, "data_vars", {}) else {}
    return attrs.get("long_name", name)


def save(fig: Figure, path: Path, dpi: int = 120) -> Path:
    """Write a figure atomically: drawn into a temporary file beside `path`, then renamed onto it,
    so an interrupted draw never leaves a truncated PNG under the final name."""
    from noisyjax.sweep.store import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    return path


def heatmap(
    da: xr.DataArray,
    x: str,
    y: str,
    path: Path,
    *,
    title: str = "",
    overlay: Overlay | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
) -> Path:
    """Mean over seeds (and any other remaining axis) on an x-y grid, seed spread in the title.

    Cells are drawn at their axis values; log-spaced axes get a log scale.
    """
    mean, spread = seed_summary(da) if "seed" in da.dims else (da, xr.zeros_like(da))
    others = [d for d in mean.dims if d not in (x, y)]
    if others:
        mean, spread = mean.mean(others), spread.mean(others)
    mean, spread = mean.transpose(y, x), spread.transpose(y, x)
    xs, ys = np.asarray(da[x].values, float), np.asarray(da[y].values, float)
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.subplots()
    mesh = ax.pcolormesh(
        _edges(xs), _edges(ys), mean.values, cmap=cmap, vmin=vmin, vmax=vmax, shading="flat"
    )
    fig.colorbar(mesh, ax=ax, label=da.attrs.get("long_name", da.name or ""))
    for _axis, values, setter in ((ax.xaxis, xs, ax.set_xscale), (ax.yaxis, ys, ax.set_yscale)):
        if _is_log(values):
            setter("log")
    if overlay is not None:
        overlay(ax, xs, ys)
    ax.set_xlabel(axis_label(da, x))
    ax.set_ylabel(axis_label(da, y))
    seeds = da.sizes.get("seed", 1)
    spread_txt = f"mean over {seeds} seeds; mean seed s.d. {float(np.nanmean(spread.values)):.3f}"
    ax.set_title(f"{title}\n{spread_txt}" if title else spread_txt, fontsize=10)
    save(fig, path)
    return path


def trajectories(
    run: xr.Dataset, path: Path, *, title: str = "", stage_steps: dict[str, float] | None = None
) -> Path:
    """One run: coefficients (top), training accuracies (middle) and the true- and noisy-label
    test errors on their own axis (bottom), with a labelled line at each stage step."""
    step = run["step"].values
    fig = Figure(figsize=(6.4, 8.0), layout="constrained")
    top, middle, bottom = fig.subplots(3, 1, sharex=True)
    top.plot(step, run["gamma_max"], label=r"$\max_{j,r}\ \gamma_{j,r}$", color="C0")
    top.plot(step, run["rho_bar_clean"], label=r"$\bar\rho$ clean (mean of $\max_r$)", color="C2")
    top.plot(step, run["rho_bar_noisy"], label=r"$\bar\rho$ flipped (mean of $\max_r$)", color="C3")
    top.set_ylabel("coefficient")
    top.legend(fontsize=8, loc="center right")
    middle.plot(step, run["train_acc"], label="train (all)", color="k")
    middle.plot(step, run["train_acc_clean"], label="train clean", color="C2")
    middle.plot(step, run["train_acc_noisy"], label="train flipped (observed labels)", color="C3")
    middle.set_ylabel("training accuracy")
    middle.set_ylim(-0.03, 1.03)
    middle.legend(fontsize=8, loc="lower right")
    bottom.plot(step, run["test_err"], label="true labels", color="k")
    bottom.plot(step, run["test_err_noisy_labels"], label="noisy labels", color="C1", ls="--")
    bottom.set_ylabel("test error")
    bottom.set_xlabel("step")
    bottom.set_ylim(bottom=0)
    bottom.legend(fontsize=8, loc="upper right")
    # Labels stacked at different heights, so lines close together keep readable labels.
    for k, (name, t) in enumerate((stage_steps or {}).items()):
        if np.isfinite(t):
            for ax in (top, middle, bottom):
                ax.axvline(t, color=f"C{k + 4}", ls="--", lw=1)
            top.annotate(
                f" {name} = {t:g}",
                (t, 1 - 0.09 * k),
                xycoords=("data", "axes fraction"),
                fontsize=8,
                ha="left",
                va="top",
                color=f"C{k + 4}",
            )
    if title:
        top.set_title(title, fontsize=10)
    save(fig, path)
    return path


def seed_band(
    ax: Axes,
    x: np.ndarray,
    da: xr.DataArray,
    label: str,
    color: str,
    ls: str = "-",
    *,
    alpha: float = 0.2,
    lw: float | None = None,
) -> None:
    """Mean over seeds as a line and the min-max over seeds as a band, ignoring NaN (a seed
    without flipped samples, a marker never reached); `da` has a `seed` dimension and x's."""
    values = np.asarray(da.transpose("seed", ...).values, float)
    with warnings.catch_warnings():  # an all-NaN column is a gap in the curve, not an error
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, low, high = (f(values, axis=0) for f in (np.nanmean, np.nanmin, np.nanmax))
    ax.plot(x, mean, color=color, ls=ls, label=label, lw=lw)
    ax.fill_between(x, low, high, color=color, alpha=alpha, lw=0)


def seed_summary(da: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Mean and standard deviation over seeds, ignoring NaN (e.g. no flipped sample)."""
    with np.errstate(all="ignore"):
        return da.mean("seed", skipna=True), da.std("seed", skipna=True)


def _is_log(values: np.ndarray) -> bool:
    from noisyjax.sweep.spec import log_spaced

    return log_spaced(values)


def _edges(values: np.ndarray) -> np.ndarray:
    """Cell edges around sorted centres (geometric midpoints on log axes)."""
    if len(values) == 1:
        return np.array([values[0] * 0.9, values[0] * 1.1]) if values[0] else np.array([-0.5, 0.5])
    if _is_log(values):
        logs = np.log(values)
        mids = (logs[1:] + logs[:-1]) / 2
        return np.exp(np.concatenate([[2 * logs[0] - mids[0]], mids, [2 * logs[-1] - mids[-1]]]))
    mids = (values[1:] + values[:-1]) / 2
    return np.concatenate([[2 * values[0] - mids[0]], mids, [2 * values[-1] - mids[-1]]])
