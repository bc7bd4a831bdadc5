"""Presets that reproduce the paper's predictions on the stages themselves (docs/science.md
section 6): the paper-sized setting, where Stage I exists, and how its end scales.

Each figure function also writes `summary.json`, the numbers docs/reproduction.md quotes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

import noisyjax as nj
from noisyjax import analysis
from noisyjax.analysis import theory_plots
from noisyjax.analysis.plots import SYMBOLS, save
from noisyjax.sweep import Axis, Sweep
from noisyjax.synthetic import theory
from sweeps.presets.figures import (
    errors_keys_clean,
    phase_map,
    run_trajectories,
    spread,
    times,
    write_summary,
)
from sweeps.presets.story import settings, story_summary

# --- paper-fig1 ------------------------------------------------------------------------------


def paper_fig1() -> tuple[Sweep, Callable]:
    """The paper-sized synthetic setting: tau = 0.2 and a tau = 0 control, n=200, d=2000.

    Command: python -m sweeps.grid --preset paper-fig1
    Setting: n = 200, d = 2000 (d/n = 10), m = 20, ||mu|| = 7, sigma_p = 1 (n SNR^2 = 4.9),
      eta = 0.05, sigma_0 = 0.001, 600 GD steps, 3 seeds. Ratio n SNR^2 (1 - 2 tau) / 2 = 1.47,
      just above the measured Stage-I boundary (docs/reproduction.md, prediction 9).
    Runtime: about 1.5 minutes on a 2-core CPU (measured 90 s while another sweep ran).
    Figures:
      paper_fig1.png: the layout of whole-story.png: coefficients, training accuracies, test
        errors, markers at their medians, the Stage-I window shaded. With tau = 0.2 the clean
        samples are fitted at once while the flipped ones keep their true label through the
        window, then rho_bar of the flipped samples overtakes max gamma and they are memorized.
        At d/n = 10 that Stage II is benign on this time scale: the true-label test error stays
        at 0-0.003 to the end (and still does at 10x the steps); the loss of generalization the
        paper's abstract describes shows at smaller d/n (preset whole-story).
      trajectories_tau0.2.png, trajectories_tau0.png: seed 0 alone (library layout).
      summary.json: every marker per seed and the prediction checks (noisyjax.analysis.predictions).
    """
    # Dense engine: the same data draws as the figures of docs/core.md and docs/stages.md.
    cfg = nj.Config(n=200, d=2000, m=20, steps=600, log_every=1, n_test=1000, engine="dense")
    hp = nj.HParams(eta=0.05, mu_norm=7.0, sigma_p=1.0, sigma_0=0.001)
    return Sweep("paper-fig1", cfg, hp, (Axis("tau", (0.2, 0.0)),), seeds=3), paper_fig1_figures


def paper_fig1_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    noisy, control = settings(ds)
    runs = {f"tau = {float(noisy['tau']):g}": noisy}
    if control is not None:
        runs["tau = 0 (control)"] = control
    title = "n=200, d=2000, m=20, ||mu||=7, sigma_p=1, eta=0.05 (d/n = 10)"
    paths = [theory_plots.story_layout(runs, out / "paper_fig1.png", title)]
    for tau in ds["tau"].values:
        run = ds.sel(tau=tau).isel(seed=0)
        paths.append(
            run_trajectories(
                run,
                out / f"trajectories_tau{tau:g}.png",
                f"n=200, d=2000, m=20, ||mu||=7, tau={tau:g}, seed 0",
            )
        )
    summary = story_summary(noisy, control if control is not None else noisy)
    paths.append(write_summary(out, summary))
    return paths


# --- stage1-phase ----------------------------------------------------------------------------


def stage1_phase() -> tuple[Sweep, Callable]:
    """Where Stage I exists over n SNR^2 x tau, against the rate heuristic (prediction 9).

    Command: python -m sweeps.grid --preset stage1-phase
    Regime: ratio n SNR^2 (1 - 2 tau) / 2 from 0.03 to 14.4: both sides of the
      boundary, by design (it is the map of it).
    Runtime: about 2 minutes on a 2-core CPU (9 x 13 cells x 3 seeds = 351 runs, n=100,
      d=1000, m=10, 300 GD steps, sigma_0 = 0.001, eta = 0.05).
    Figures (dashed: the heuristic boundary n SNR^2 (1 - 2 tau)/2 = 1, i.e.
      n SNR^2 = 2 / (1 - 2 tau), theory.stage_one_boundary):
      stage1_exists.png: fraction of seeds with a non-empty Stage-I window; 1 above the dashed
        curve, 0 well below it.
      stage1_flipped_acc_window_end.png: flipped accuracy (observed labels) at t_memorize.
      stage1_min_flipped_acc.png: the minimum over training of the flipped accuracy (does the
        network ever predict the flipped samples' true labels?).
      stage1_phase_boundary.png: per tau, the smallest n SNR^2 with Stage I in >= half the seeds,
        against 2 / (1 - 2 tau) and against the same curve at ratio levels 1/2 and 2.
      summary.json: the measured boundary per tau.
    """
    cfg = nj.Config(
        n=100, d=1000, m=10, steps=300, log_every=2, n_test=500, eval_every=10, engine="auto"
    )
    hp = nj.HParams(eta=0.05, sigma_p=1.0, sigma_0=0.001)
    axes = (
        Axis("tau", tuple(round(0.05 * k, 2) for k in range(1, 10))),
        Axis("n_snr2", tuple(float(v) for v in np.geomspace(0.5, 32.0, 13))),
    )
    return Sweep("stage1-phase", cfg, hp, axes, seeds=3), stage1_phase_figures


def stage1_phase_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    def fraction_map(da: xr.DataArray, label: str, name: str, title: str) -> Path:
        return phase_map(da, label, out / name, title, vmin=0, vmax=1)

    exists = ds["stage_one_exists"].astype(float)
    paths = [
        fraction_map(
            exists,
            "fraction of seeds with Stage I",
            "stage1_exists.png",
            "Stage I exists: a non-empty Stage-I window (t_stage1 reached)",
        ),
        fraction_map(
            ds["t_memorize_train_acc_noisy"],
            "flipped accuracy at t_memorize",
            "stage1_flipped_acc_window_end.png",
            "Flipped accuracy (observed labels) where the window closes",
        ),
        fraction_map(
            ds["train_acc_noisy"].min("step"),
            "min flipped accuracy",
            "stage1_min_flipped_acc.png",
            "Minimum over training of the flipped accuracy",
        ),
    ]
    frac = exists.mean("seed")
    tau = ds["tau"].values
    grid = ds["n_snr2"].values
    measured = []
    for t in tau:
        ok = frac.sel(tau=t).values >= 0.5
        # The smallest n SNR^2 above which Stage I holds at every larger grid value.
        tail = np.flatnonzero(~ok)
        first = tail[-1] + 1 if tail.size else 0
        measured.append(float(grid[first]) if first < len(grid) else float("nan"))
    measured = np.asarray(measured)
    predicted = theory.stage_one_boundary(tau)
    paths.append(boundary_plot(tau, measured, grid, out / "stage1_phase_boundary.png"))
    ratio = theory.rate_ratio(measured, tau)
    edge = xr.apply_ufunc(theory.stage_one_boundary, ds["tau"])
    paths.append(
        write_summary(
            out,
            {
                "tau": tau.tolist(),
                "measured_boundary_n_snr2": measured.tolist(),
                "heuristic_boundary_n_snr2": predicted.tolist(),
                "heuristic_ratio_at_measured_boundary": ratio.tolist(),
                "grid_n_snr2": grid.tolist(),
                # Cells at least a factor 1.5 away from the heuristic boundary, either side.
                "fraction_exists_above_heuristic": float(
                    exists.where(ds["n_snr2"] > 1.5 * edge).mean()
                ),
                "fraction_exists_below_heuristic": float(
                    exists.where(ds["n_snr2"] < edge / 1.5).mean()
                ),
            },
        )
    )
    return paths


def boundary_plot(tau: np.ndarray, measured: np.ndarray, grid: np.ndarray, path: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.6, 4.4), layout="constrained")
    ax = fig.subplots()
    fine = np.linspace(tau.min(), tau.max(), 200)
    for level, ls in ((0.5, ":"), (1.0, "--"), (2.0, "-.")):
        ax.plot(
            fine,
            theory.stage_one_boundary(fine, level),
            color="k",
            ls=ls,
            lw=1,
            label=f"heuristic ratio = {level:g}",
        )
    ax.plot(tau, measured, "o-", color="C3", label="measured (>= half the seeds)")
    ax.set_yscale("log")
    ax.set_ylim(grid.min() / 1.2, grid.max() * 1.2)
    ax.set_xlabel(SYMBOLS["tau"])
    ax.set_ylabel("n SNR^2 at the Stage-I boundary")
    ax.legend(fontsize=8)
    ax.set_title("Stage-I boundary: measured vs n SNR^2 (1 - 2 tau) / 2 = level", fontsize=10)
    save(fig, path)
    return path


# --- t1-scaling ------------------------------------------------------------------------------


def t1_scaling() -> tuple[Sweep, Callable]:
    """How the end of Stage I scales with eta, n, m, d at fixed n SNR^2 (prediction 4).

    Command: python -m sweeps.grid --preset t1-scaling
    Runtime: about 2 minutes on a 2-core CPU (2^4 factorial: eta in {0.05, 0.1}, n in
      {50, 100}, m in {8, 16}, d in {500, 1000}; n SNR^2 = 8, tau = 0.1; 3 seeds = 48 runs,
      400 GD steps logged at every step).
    Regime: ratio n SNR^2 (1 - 2 tau) / 2 = 3.2, above the measured Stage-I boundary.
    Measured times per run (the stage markers, docs/stages.md): t1 (step 1 in every run: no
      slope to fit), t_clean (mean clean training loss < Config.clean_loss_level = 0.3), the
      marker with the theory's scaling: fitted exponents (-0.99, 0.93, 0.98, -0.96) for
      (eta, n, m, d), R^2 = 0.995, against (-1, 1, 1, -1); t_memorize (the window's end:
      (-0.96, 1.19, 0.92, -0.76)), t_half_flipped, and t2 (straggler-driven, R^2 = 0.81).
    Figures:
      t1_exponents.png: the fitted exponents of log t = a + b_eta log eta + b_n log n + b_m log m
        + b_d log d (OLS over the 48 runs, 95% t intervals) for each time, against the theory's
        (-1, +1, +1, -1) from t1 ~ n m / (eta sigma_p^2 d).
      t1_collapse.png: each time against n m / (eta sigma_p^2 d), log-log, slope-1 lines.
      summary.json: the fits.
    """
    cfg = nj.Config(
        n=100, d=1000, m=16, steps=400, log_every=1, n_test=100, eval_every=50, engine="auto"
    )
    hp = nj.HParams(eta=0.05, tau_plus=0.1, tau_minus=0.1, sigma_p=1.0, sigma_0=0.001)
    axes = (
        Axis("eta", (0.05, 0.1)),
        Axis("n", (50, 100)),
        Axis("m", (8, 16)),
        Axis("d", (500, 1000)),
        Axis("n_snr2", (8.0,)),
    )
    return Sweep("t1-scaling", cfg, hp, axes, seeds=3), t1_scaling_figures


def t1_scaling_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    flat = ds.stack(run=[d for d in ds["t1"].dims])
    measured = {
        "t1 (margin > 0)": times(flat["t1"]),
        errors_keys_clean(): times(flat["t_clean"]),
        "t_memorize (window end)": times(flat["t_memorize"]),
        "t_half_flipped": times(flat["t_half_flipped"]),
        "t2 (all fitted)": times(flat["t2"]),
    }
    columns = {k: flat[k].values.astype(float) for k in ("eta", "n", "m", "d")}
    fits, constant = {}, []
    for label, t in measured.items():
        if np.unique(t[np.isfinite(t)]).size > 1:
            fits[label] = analysis.loglog_fit(columns, t)
        else:  # e.g. t1 = 1 in every run: nothing to fit
            constant.append(f"{label} = {np.nanmax(t):g} in every run (no slope)")
    predicted = theory.t1_scale(
        columns["n"], columns["m"], columns["eta"], flat["sigma_p"].values, columns["d"]
    )
    paths = [
        theory_plots.exponents(
            fits,
            dict(theory.T1_EXPONENTS),
            out / "t1_exponents.png",
            "t ~ eta^b_eta n^b_n m^b_m d^b_d at n SNR^2 = 8, tau = 0.1",
            note="; ".join(constant),
        ),
        theory_plots.collapse(
            predicted, measured, out / "t1_collapse.png", "Stage times against the theory's scale"
        ),
    ]
    paths.append(
        write_summary(
            out,
            {
                "fits": {k: {**f.as_dict(), "r2": f.r2, "dof": f.dof} for k, f in fits.items()},
                "times": {k: spread(v) for k, v in measured.items()},
                "ratio_to_scale": {k: spread(v / predicted) for k, v in measured.items()},
            },
        )
    )
    return paths
