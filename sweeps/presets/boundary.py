"""Where Stage I exists, located by refinement with an interval (prediction 9,
docs/reproduction.md; the method in docs/refine.md)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

import noisyjax as nj
from noisyjax.analysis.plots import save
from noisyjax.sweep import Axis, Sweep
from noisyjax.sweep.refine import load_refinement
from noisyjax.sweep.spec import Refine
from noisyjax.synthetic import theory
from sweeps.presets.figures import write_summary


def stage1_boundary() -> tuple[Sweep, Callable]:
    """The Stage-I boundary located by refinement at twelve (tau, n, sigma_0) settings.

    Command: python -m sweeps.grid --preset stage1-boundary
    Setting: tau in {0.1, 0.2, 0.3} x n in {50, 200} x sigma_0 in {0.001, 0.01}, d = 1000,
      m = 20, sigma_p = 1, eta = 0.05, 8 seeds, 300 GD steps (wishart engine); n SNR^2 on 5
      log-spaced values from 1 to 16, then 4 rounds of geometric bisection of the bracket
      where half of the seeds have a non-empty Stage-I window (`stage_one_exists` = 0.5):
      at most 864 runs, to brackets a factor 2^(1/16) = 1.044 wide (a full grid at that
      resolution: 6,240 runs).
    Regime: the rate heuristic puts the boundary at ratio n SNR^2 (1 - 2 tau) / 2 = 1, i.e.
      n SNR^2 = 2.5, 3.3 and 5 at tau = 0.1, 0.2 and 0.3: inside the coarse grid.
    Runtime: 55 s measured on an idle 2-core CPU.
    Figures:
      boundary.png: the located n SNR^2 with its 95% bootstrap interval over the coarse
        grid's fraction of seeds with a Stage I, per (n, sigma_0).
      stage1_boundary_ratio.png: the located boundary as the ratio n SNR^2 (1 - 2 tau) / 2
        against tau, with intervals, one line per (n, sigma_0): the heuristic is ratio 1.
      summary.json: per setting the crossing in n SNR^2 and in the ratio, its interval and
        whether the heuristic's ratio = 1 lies in it.
    """
    cfg = nj.Config(
        n=200, d=1000, m=20, steps=300, log_every=10, n_test=100, eval_every=50, engine="auto"
    )
    hp = nj.HParams(eta=0.05, tau_plus=0.2, tau_minus=0.2, sigma_p=1.0, sigma_0=0.001)
    axes = (
        Axis("tau", (0.1, 0.2, 0.3)),
        Axis("n", (50, 200)),
        Axis("sigma_0", (0.001, 0.01)),
        Axis("n_snr2", (1.0, 2.0, 4.0, 8.0, 16.0)),
    )
    rule = Refine("stage_one_exists", 0.5, "n_snr2", rounds=4)
    return Sweep("stage1-boundary", cfg, hp, axes, seeds=8, refine=rule), boundary_figures


def boundary_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    """The located boundaries as the heuristic's ratio, against tau (boundary.nc's)."""
    boundary = load_refinement(out)
    factor = (1 - 2 * boundary["tau"]) / 2  # ratio = n SNR^2 (1 - 2 tau) / 2
    ratio = boundary["crossing"] * factor
    low, high = boundary["crossing_low"] * factor, boundary["crossing_high"] * factor
    settings = [d for d in boundary["crossing"].dims if d != "tau"]
    fig = Figure(figsize=(6.4, 4.6), layout="constrained")
    ax = fig.subplots()
    rows = []
    combos = list(itertools.product(*[range(boundary.sizes[d]) for d in settings]))
    for k, combo in enumerate(combos):
        where = dict(zip(settings, combo, strict=True))
        label = ", ".join(f"{d}={boundary[d].values[i]:g}" for d, i in where.items())
        taus = boundary["tau"].values + 0.006 * (k - (len(combos) - 1) / 2)  # drawn apart
        r, lo, hi = (v.isel(where).values for v in (ratio, low, high))
        ax.errorbar(taus, r, yerr=[r - lo, hi - r], fmt="o-", ms=3, lw=1, capsize=2, label=label)
        for j, tau in enumerate(boundary["tau"].values):
            cell = boundary.isel(where | {"tau": j})
            rows.append(
                {
                    "setting": {"tau": float(tau), **{d: float(cell[d]) for d in settings}},
                    "n_snr2_at_boundary": float(cell["crossing"]),
                    "n_snr2_interval": [float(cell["crossing_low"]), float(cell["crossing_high"])],
                    "ratio_at_boundary": float(r[j]),
                    "ratio_interval": [float(lo[j]), float(hi[j])],
                    "ratio_1_in_interval": bool(lo[j] <= 1.0 <= hi[j]),
                    "monotone": bool(cell["monotone"]),
                }
            )
    ax.axhline(1.0, color="k", ls="--", lw=1, label="rate heuristic: ratio = 1")
    ax.set_xlabel(r"noise rate $\tau$")
    ax.set_ylabel(r"ratio $n\,\mathrm{SNR}^2 (1 - 2\tau) / 2$ at the boundary")
    ax.set_title("Stage-I boundary located by refinement, 95% bootstrap intervals", fontsize=10)
    ax.legend(fontsize=7)
    paths = [out / "stage1_boundary_ratio.png"]
    save(fig, paths[0])
    ratios = np.array([row["ratio_at_boundary"] for row in rows])
    summary = {
        "settings": rows,
        "ratio_at_boundary_range": [float(np.nanmin(ratios)), float(np.nanmax(ratios))],
        "heuristic": "n SNR^2 (1 - 2 tau) / 2 = 1 (theory.stage_one_boundary)",
        "heuristic_n_snr2": {
            f"{t:g}": float(theory.stage_one_boundary(t)) for t in boundary["tau"].values
        },
        "runs": int(boundary.attrs["runs"]),
        "full_grid_runs": int(boundary.attrs["full_grid_runs"]),
    }
    return paths + [write_summary(out, summary)]
