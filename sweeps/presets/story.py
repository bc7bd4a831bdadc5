"""The flagship: the whole two-stage story in one small run (docs/reproduction.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

import noisyjax as nj
from noisyjax.analysis import predictions, theory_plots
from noisyjax.sweep import Axis, Sweep, sweep_of
from sweeps.presets.figures import RUN_DIMS, write_summary

N, D, N_SNR2, TAU = 200, 300, 16.0, 0.3


def whole_story() -> tuple[Sweep, Callable]:
    """Both stages and the loss of generalization, with a tau = 0 control (d/n = 1.5).

    Command: python -m sweeps.grid --preset whole-story
    Setting: n = 200, d = 300, m = 20, sigma_p = 1, n SNR^2 = 16 (||mu|| = 4.90),
      sigma_0 = 0.001, eta = 0.2, exact flips at tau = 0.3 and a tau = 0 control, 600 GD steps,
      2000 test points, 4 seeds. Ratio n SNR^2 (1 - 2 tau) / 2 = 3.2, above the measured Stage-I
      boundary (docs/reproduction.md, prediction 9).
    Runtime: about 40 s on a 2-core CPU (8 runs, measured 35-45 s with another job running).
    Figures:
      story.png: tau = 0.3 (left) and the control (right). Top: max gamma rises at once; the
        flipped samples' rho_bar stays below it through the Stage-I window (shaded,
        t_stage1 = 1 to t_memorize = 60-80) and overtakes it near step 90. Middle: every clean
        sample fitted from step 1 while flipped accuracy stays near 0, then climbs to 1 (t2
        at 420-500, one seed later). Bottom: the true-label test error is 0 through the window
        and climbs to about 0.09 as the flipped samples are memorized; the noisy-label error
        goes from tau = 0.3 to about 0.34. Control: one stage, both errors stay at 0.
      summary.json: every marker per seed for both settings and the prediction checks
        (`noisyjax.analysis.predictions.check`), the numbers docs/reproduction.md quotes.
    """
    cfg = nj.Config(n=N, d=D, m=20, steps=600, log_every=1, n_test=2000, flip="exact")
    hp = nj.HParams(eta=0.2, sigma_p=1.0, sigma_0=0.001)
    axes = (Axis("tau", (TAU, 0.0)), Axis("n_snr2", (N_SNR2,)))
    return Sweep("whole-story", cfg, hp, axes, seeds=4), whole_story_figures


def story_summary(noisy: xr.Dataset, control: xr.Dataset) -> dict:
    """Markers per seed of both settings and the prediction checks (summary.json)."""
    return {
        "markers": {
            "noisy": predictions.marker_table(noisy),
            "control": predictions.marker_table(control),
        },
        "predictions": predictions.check(noisy, control),
    }


def settings(ds: xr.Dataset) -> tuple[xr.Dataset, xr.Dataset]:
    """The noisy setting (largest tau) and the control (tau = 0), other axes at their first
    value; a sweep without a control compares with nothing (the control is then None)."""
    others = {d: 0 for d in ds.dims if d not in ("tau",) + RUN_DIMS}
    ds = ds.isel(others)
    taus = np.asarray(ds["tau"].values, float)
    noisy = ds.isel(tau=int(np.argmax(taus)))
    control = ds.isel(tau=int(np.argmin(taus))) if np.any(taus == 0) else None
    return noisy, control


def whole_story_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    noisy, control = settings(ds)
    tau = float(noisy["tau"])
    runs = {f"tau = {tau:g}": noisy}
    if control is not None:
        runs["tau = 0 (control)"] = control
    cfg = sweep_of(ds).cfg
    title = f"n={cfg.n}, d={cfg.d}, m={cfg.m}, {cfg.steps} GD steps, {noisy.sizes['seed']} seeds"
    paths = [theory_plots.story_layout(runs, out / "story.png", title)]
    summary = story_summary(noisy, control if control is not None else noisy)
    return paths + [write_summary(out, summary)]
