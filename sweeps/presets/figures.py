"""What the presets' figures share: phase maps, trajectories, summaries, SNR axes, and the
wrappers the command line puts around a preset's figures (extra axes, --heatmap).

Imports nothing from the presets themselves: every preset module may import from here.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

import noisyjax as nj
from noisyjax.analysis.plots import heatmap, trajectories
from noisyjax.synthetic.config import CLEAN_LOSS_LEVEL

# Dimensions every run has; any other dimension of a results Dataset is a sweep axis.
RUN_DIMS = ("seed", "step", "epoch", "sample")


# --- values of the results --------------------------------------------------------------------


def final(da: xr.DataArray) -> xr.DataArray:
    """A trajectory's last logged value (a per-run variable as it is); its time axis is the
    step, or the epoch of a real-image sweep."""
    for time in ("step", "epoch"):
        if time in da.dims:
            return da.isel({time: -1})
    return da


def times(da: xr.DataArray) -> np.ndarray:
    """A transition time with NEVER (-1) as NaN."""
    v = np.asarray(da.values, float)
    return np.where(v >= 0, v, np.nan)


def spread(values: np.ndarray) -> dict[str, float]:
    """Mean, standard deviation, min and max over seeds (NaN ignored)."""
    v = np.asarray(values, float).ravel()
    v = v[np.isfinite(v)]
    if not v.size:
        return {"mean": float("nan"), "sd": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"mean": v.mean(), "sd": v.std(), "min": v.min(), "max": v.max(), "count": v.size}


def errors_keys_clean() -> str:
    """The label of the t_clean marker in figures and summaries."""
    return f"t_clean (clean loss < {CLEAN_LOSS_LEVEL:g})"  # Config.clean_loss_level's default


def write_summary(out: Path, payload: dict) -> Path:
    """`summary.json`: the numbers a preset's docs quote."""
    path = out / "summary.json"
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    return path


# --- SNR axes (the neighbouring papers' presets) -----------------------------------------------


def mu_norms(snrs: tuple[float, ...], d: int, sigma_p: float) -> tuple[float, ...]:
    """||mu|| = SNR sigma_p sqrt(d) for each SNR."""
    return tuple(float(f"{s * sigma_p * np.sqrt(d):.10g}") for s in snrs)


def with_snr_axis(da: xr.DataArray, d: int, sigma_p: float) -> xr.DataArray:
    """Relabel a mu_norm axis as SNR = mu_norm / (sigma_p sqrt(d)) (rounded to 4 digits)."""
    snr = np.round(da["mu_norm"].values / (sigma_p * np.sqrt(d)), 4)
    return da.assign_coords(mu_norm=snr).rename(mu_norm="SNR")


# --- phase maps and trajectories ---------------------------------------------------------------


def stage_boundary(ax, xs: np.ndarray, ys: np.ndarray) -> None:
    """Overlay the rate heuristic n SNR^2 (1 - 2 tau) / 2 = 1 (docs/science.md 6.9)."""
    tau = np.linspace(min(xs.min(), 0.0), min(xs.max(), 0.49), 200)
    ax.plot(
        tau,
        2.0 / (1.0 - 2.0 * tau),
        color="cyan",
        ls="--",
        lw=1.5,
        label=r"heuristic: $n\,\mathrm{SNR}^2(1-2\tau)/2 = 1$",
    )
    ax.set_ylim(ys.min() / 1.3, ys.max() * 1.3)
    ax.legend(loc="upper left", fontsize=8)


def phase_map(da: xr.DataArray, label: str, path: Path, title: str, **limits) -> Path:
    """A heatmap over tau (x) and n SNR^2 (y) with the rate heuristic's boundary overlaid."""
    return heatmap(
        da.astype(float).rename(label),
        "tau",
        "n_snr2",
        path,
        title=title,
        overlay=stage_boundary,
        cmap="magma",
        **limits,
    )


def representative_run(ds: xr.Dataset, **coords: float) -> xr.Dataset:
    """One run for trajectory plots: seed 0, nearest grid values to `coords`."""
    return ds.sel(coords, method="nearest").isel(seed=0)


def stage_lines(run: xr.Dataset) -> dict[str, float]:
    """The run's Stage-I window and t2 for the stage lines (NaN when never reached)."""
    return {
        name: float(run[name]) if float(run[name]) >= 0 else float("nan")
        for name in ("t_stage1", "t_memorize", "t2")
    }


def run_trajectories(run: xr.Dataset, path: Path, title: str) -> Path:
    return trajectories(run, path, title=title, stage_steps=stage_lines(run))


# --- figures of a sweep the command line changed -----------------------------------------------


def first_values(ds: xr.Dataset, keep: tuple[str, ...], what: str) -> xr.Dataset:
    """`ds` at the first value of every sweep axis not in `keep`, saying so on stderr."""
    extra = [d for d in ds.dims if d not in keep + RUN_DIMS]
    if not extra:
        return ds
    picked = ", ".join(f"{d}={ds[d].values[0]}" for d in extra)
    print(f"note: {what} drawn at {picked} (axes they do not plot)", file=sys.stderr)
    return ds.isel({d: 0 for d in extra})


def on_preset_axes(figures: Callable, axes: tuple[str, ...]) -> Callable:
    """A preset's figures for a sweep with more axes than the preset's own: drawn at the first
    value of each added axis (the results keep every value)."""

    def draw(ds: xr.Dataset, out: Path) -> list[Path]:
        return figures(first_values(ds, axes, "the preset's figures"), out)

    return draw


def with_heatmaps(figures: Callable, specs: list[tuple[str, str, str]]) -> Callable:
    """Add heatmaps of per-run variables (a trajectory contributes its last value)."""

    def draw(ds: xr.Dataset, out: Path) -> list[Path]:
        paths = figures(ds, out)
        for var, x, y in specs:
            da = final(first_values(ds, (x, y), f"heatmap_{var}.png")[var])
            da = da.where(da >= 0) if var in nj.TRANSITION_NAMES else da
            da = da.astype(float).rename(var)
            paths.append(heatmap(da, x, y, out / f"heatmap_{var}.png", title=var))
        return paths

    return draw
