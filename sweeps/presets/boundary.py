"""Where Stage I exists, measured with an interval (prediction 9, docs/reproduction.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

import noisyjax as nj
from noisyjax.analysis.plots import save
from noisyjax.sweep import Axis, Sweep
from noisyjax.synthetic import theory
from sweeps.presets.figures import write_summary

TAU = 0.2
N_BOOTSTRAP = 2000


def stage1_boundary() -> tuple[Sweep, Callable]:
    """The Stage-I boundary at eight (n, m, sigma_0) settings, with bootstrap intervals.

    Command: python -m sweeps.grid --preset stage1-boundary
    Setting: n in {50, 200} x m in {10, 20} x sigma_0 in {0.001, 0.01}, d = 1000,
      sigma_p = 1, eta = 0.05, tau = 0.2 (ratio n SNR^2 (1 - 2 tau) / 2 = 0.3 n SNR^2),
      n SNR^2 on 9 log-spaced values from 1 to 16 (ratio 0.3 to 4.8), 8 seeds, 300 GD steps
      (wishart engine: 576 runs).
    Runtime: about 3 minutes on a 2-core CPU.
    Figures:
      stage1_boundary_fraction.png: per setting, the fraction of seeds with a non-empty
        Stage-I window against the ratio, the 0.5 crossing with its 95% bootstrap interval.
      summary.json: per setting the crossing in n SNR^2 and in the ratio, the interval
        (resampling seeds, 2000 draws), and whether the rate heuristic's ratio = 1 lies in it.
    """
    cfg = nj.Config(
        n=200, d=1000, m=20, steps=300, log_every=10, n_test=100, eval_every=50, engine="auto"
    )
    hp = nj.HParams(eta=0.05, tau_plus=TAU, tau_minus=TAU, sigma_p=1.0, sigma_0=0.001)
    axes = (
        Axis("n", (50, 200)),
        Axis("m", (10, 20)),
        Axis("sigma_0", (0.001, 0.01)),
        Axis("n_snr2", tuple(float(v) for v in np.geomspace(1.0, 16.0, 9))),
    )
    return Sweep("stage1-boundary", cfg, hp, axes, seeds=8), boundary_figures


def crossing(x: np.ndarray, frac: np.ndarray, level: float = 0.5) -> float:
    """The x (log-interpolated) above which the fraction stays >= level; NaN if it never
    reaches it, x[0] if it is there from the start."""
    ok = frac >= level
    if not ok[-1]:
        return float("nan")
    below = np.flatnonzero(~ok)
    if not below.size:
        return float(x[0])
    i = below[-1]  # last grid value below the level; i + 1 is at or above it
    lo, hi = np.log(x[i]), np.log(x[i + 1])
    w = (level - frac[i]) / (frac[i + 1] - frac[i])
    return float(np.exp(lo + w * (hi - lo)))


def bootstrap_crossing(
    x: np.ndarray, exists_XS: np.ndarray, rng: np.random.Generator, draws: int = N_BOOTSTRAP
) -> tuple[float, float, float]:
    """The crossing of the seed fraction and its 95% percentile interval over seed resamples
    (seeds drawn with replacement, the same draw for every grid value: a seed is one data draw
    and init at each n SNR^2)."""
    seeds = exists_XS.shape[1]
    point = crossing(x, exists_XS.mean(axis=1))
    pick = rng.integers(0, seeds, size=(draws, seeds))
    samples = np.array([crossing(x, exists_XS[:, p].mean(axis=1)) for p in pick])
    finite = samples[np.isfinite(samples)]
    if finite.size < draws * 0.9:  # the crossing is off the grid in > 10% of resamples
        return point, float("nan"), float("nan")
    low, high = np.percentile(finite, [2.5, 97.5])
    return point, float(low), float(high)


def boundary_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    x = ds["n_snr2"].values
    tau = float(ds["tau_plus"].max())
    factor = (1 - 2 * tau) / 2  # ratio = n SNR^2 (1 - 2 tau) / 2
    others = [d for d in ds["stage_one_exists"].dims if d not in ("n_snr2", "seed")]
    stacked = ds["stage_one_exists"].stack(setting=others).transpose("setting", "n_snr2", "seed")
    fig = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.subplots()
    rows = []
    for k in range(stacked.sizes["setting"]):
        cell = stacked.isel(setting=k)
        label = ", ".join(f"{d}={cell[d].item():g}" for d in others)
        exists = cell.values.astype(bool)
        point, low, high = bootstrap_crossing(x, exists, rng)
        rows.append(
            {
                "setting": {d: float(cell[d].item()) for d in others},
                "n_snr2_at_boundary": point,
                "n_snr2_interval": [low, high],
                "ratio_at_boundary": point * factor,
                "ratio_interval": [low * factor, high * factor],
                "ratio_1_in_interval": bool(low * factor <= 1.0 <= high * factor),
                "fraction_by_n_snr2": exists.mean(axis=1).tolist(),
            }
        )
        line = ax.plot(x * factor, exists.mean(axis=1), "o-", ms=3, lw=1, label=label)[0]
        if np.isfinite(low):  # drawn a little apart around 0.5 so the intervals stay readable
            ax.errorbar(
                point * factor,
                0.5 + 0.025 * (k - (stacked.sizes["setting"] - 1) / 2),
                xerr=[[(point - low) * factor], [(high - point) * factor]],
                fmt="s",
                color=line.get_color(),
                capsize=3,
            )
    ax.axvline(1.0, color="k", ls="--", lw=1, label="rate heuristic: ratio = 1")
    ax.axhline(0.5, color="gray", lw=0.5)
    ax.set_xscale("log")
    ticks = [t for t in (0.3, 0.5, 1.0, 2.0, 3.0, 5.0) if x.min() * factor <= t <= x.max() * factor]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(r"ratio $n\,\mathrm{SNR}^2 (1 - 2\tau) / 2$")
    ax.set_ylabel("fraction of seeds with a Stage-I window")
    ax.set_title(f"Stage-I boundary, tau = {tau:g}: crossings with 95% bootstrap intervals")
    ax.legend(fontsize=6, loc="upper left")
    paths = [out / "stage1_boundary_fraction.png"]
    save(fig, paths[0])
    ratios = np.array([r["ratio_at_boundary"] for r in rows])
    summary = {
        "tau": tau,
        "grid_n_snr2": x.tolist(),
        "settings": rows,
        "ratio_at_boundary_range": [float(np.nanmin(ratios)), float(np.nanmax(ratios))],
        "heuristic": "n SNR^2 (1 - 2 tau) / 2 = 1 (theory.stage_one_boundary)",
        "heuristic_n_snr2": float(theory.stage_one_boundary(tau)),
    }
    return paths + [write_summary(out, summary)]
