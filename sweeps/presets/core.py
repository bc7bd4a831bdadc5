"""The default preset, stage-phase, and its seconds-long smoke version, tiny."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

import noisyjax as nj
from noisyjax.sweep import Axis, Sweep
from sweeps.presets.figures import phase_map, representative_run, run_trajectories


def stage_phase() -> tuple[Sweep, Callable]:
    """Phase diagram of Stage I over tau x n SNR^2 (the default preset; about 2 min on 2 CPUs).

    Command: python -m sweeps.grid            (or --preset stage-phase)
    Regime: ratio n SNR^2 (1 - 2 tau) / 2 from 0.03 to 16: the grid
      spans both sides of the measured Stage-I boundary by design.
    Runtime: about 2 minutes on a 2-core CPU (10 x 13 cells x 3 seeds = 390 runs, n=100,
    d=1000, m=10, 300 GD steps).
    Figures:
      stage_phase.png: length of the Stage-I window (steps from t_stage1, every clean sample
        fitted with >= 90% of the flipped samples at loss > log 2, to t_memorize), mean over
        seeds: tens to hundreds of steps at large n SNR^2, 0 where the flipped samples are
        memorized as fast as the clean ones are fitted (small n SNR^2, large tau). The dashed
        curve is the rate heuristic n SNR^2 (1-2 tau)/2 = 1: at this small initialization
        the measured boundary sits on it within the measurement's resolution, and a larger one
        moves it up (docs/reproduction.md, prediction 9).
      stage_one_exists.png: fraction of seeds with a non-empty Stage-I window.
      final_test_error.png: true-label test error at the end of training; small where the
        signal is learned, larger at small n SNR^2 and large tau.
      trajectories.png: one run at tau = 0.2, n SNR^2 = 8, lines at t_stage1, t_memorize and
        t2: gamma first, then rho_bar of flipped samples overtakes; clean accuracy hits 1 long
        before flipped.
    """
    # The figures need t1, not t_best: test error every 10 steps keeps the preset near a minute.
    cfg = nj.Config(n=100, d=1000, m=10, steps=300, log_every=2, n_test=500, eval_every=10)
    hp = nj.HParams(eta=0.05, sigma_p=1.0, sigma_0=0.001)
    axes = (
        Axis("tau", (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45)),
        Axis("n_snr2", tuple(float(v) for v in np.geomspace(0.5, 32.0, 13))),
    )
    return Sweep("stage-phase", cfg, hp, axes, seeds=3), stage_phase_figures


def stage_phase_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    noisy = ds["tau"] > 0  # tau = 0 has no flipped samples: left blank
    paths = [
        phase_map(
            ds["stage_one_length"].astype(float).where(noisy),
            "Stage-I window length (steps)",
            out / "stage_phase.png",
            "Stage I: clean fitted, >= 90% of flipped at loss > log 2",
            vmin=0,
        ),
        phase_map(
            ds["stage_one_exists"].astype(float).where(noisy),
            "fraction of seeds with Stage I",
            out / "stage_one_exists.png",
            "Stage-I window non-empty (t_stage1 reached)",
            vmin=0,
            vmax=1,
        ),
        phase_map(
            ds["test_err"].isel(step=-1),
            "final test error (true labels)",
            out / "final_test_error.png",
            "End of training",
            vmin=0,
        ),
    ]
    run = representative_run(ds, tau=0.2, n_snr2=8.0)
    paths.append(
        run_trajectories(
            run, out / "trajectories.png", f"tau={float(run.tau):g}, n SNR^2={float(run.n_snr2):g}"
        )
    )
    return paths


def tiny() -> tuple[Sweep, Callable]:
    """A seconds-long smoke sweep (tests, notebooks, CI): 2 x 2 cells x 2 seeds.

    Command: python -m sweeps.grid --preset tiny
    Regime: ratio n SNR^2 (1 - 2 tau) / 2 = 0.4, 0.8, 1.6 and 3.2: both sides of
      the measured Stage-I boundary.
    Runtime: a few seconds on a 2-core CPU (most of it compilation).
    Figures: the same three as stage-phase, on a coarse grid.
    """
    cfg = nj.Config(n=20, d=60, m=4, steps=40, log_every=4, n_test=50)
    hp = nj.HParams(eta=0.5, sigma_0=0.01)
    axes = (Axis("tau", (0.1, 0.3)), Axis("n_snr2", (2.0, 8.0)))
    return Sweep("tiny", cfg, hp, axes, seeds=2), stage_phase_figures
