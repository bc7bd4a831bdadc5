"""Presets that reproduce the paper's predictions on using Stage I (docs/science.md section 6):
early stopping inside the window (prediction 7) and small-loss sample selection (prediction 2).

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
from noisyjax.analysis.plots import save
from noisyjax.sweep import Axis, Sweep, sweep_of
from noisyjax.synthetic import theory
from sweeps.presets.figures import errors_keys_clean, spread, times, write_summary

# --- early-stopping --------------------------------------------------------------------------


def early_stopping_preset() -> tuple[Sweep, Callable]:
    """Early stopping against d/n at fixed n SNR^2: errors at t1, t_best and the end (pred. 7).

    Command: python -m sweeps.grid --preset early-stopping
    Runtime: about 2.5 minutes on a 2-core CPU (d/n in {1, 1.5, 2, 3, 4, 6, 8} with n = 100,
      m = 10, n SNR^2 = 8, tau = 0.2, eta = 0.2; 4 seeds = 28 runs; 600 GD steps, test error
      on 4000 points at every step, 200 held-out validation samples with noisy labels).
    Regime: ratio n SNR^2 (1 - 2 tau) / 2 = 2.4, above the measured Stage-I boundary
      (docs/reproduction.md, prediction 9), so every run has a Stage-I window to stop in.
    Stopping points per run: t1 (a diagnostic, often step 1), t_memorize (the end of the
      Stage-I window), t_clean (mean clean loss < Config.clean_loss_level = 0.3), t_best
      (oracle), the noisy-validation rule, the log-2 rule (tau_hat = tau), the end.
    Figures:
      early_stopping.png: true-label test error at each stopping point against d/n (log
        scale; mean and seed min-max), with the fits A exp(-c d/n) of the oracle, t_clean and
        end-of-training errors, and the paper's Stage-II bound 0.5 min(tau_plus, tau_minus)
        dash-dotted (prediction 10). Prediction 7: stopped errors below the end-of-training
        error, and the end-of-training degradation shrinking as d/n grows.
      early_stopping_steps.png: where each rule stopped.
      summary.json: errors per d/n and rule (mean, sd, min, max over seeds) and the fits.
    """
    cfg = nj.Config(
        n=100,
        d=800,
        m=10,
        steps=600,
        log_every=3,
        n_test=4000,
        n_val=200,
        eval_every=1,
        engine="auto",
    )
    hp = nj.HParams(eta=0.2, tau_plus=0.2, tau_minus=0.2, sigma_p=1.0, sigma_0=0.001)
    axes = (Axis("d", (100, 150, 200, 300, 400, 600, 800)), Axis("n_snr2", (8.0,)))
    return Sweep("early-stopping", cfg, hp, axes, seeds=4), early_stopping_figures


def early_stopping_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    from noisyjax.analysis import early_stopping

    ds = ds.isel(n_snr2=0)
    n_snr2 = float(ds["n_snr2"])
    table = early_stopping.stopping_table(ds)
    t_clean = times(ds["t_clean"].transpose("d", "seed"))
    final_err = ds["test_err"].isel(step=-1)
    # A marker that never happens stops nothing: training runs to the end.
    err_clean = xr.where(ds["t_clean"] >= 0, ds["t_clean_test_err"], final_err)
    err_window = xr.where(ds["t_memorize"] >= 0, ds["t_memorize_test_err"], final_err)
    ratio = ds["d"].values / float(ds["n"].max())
    errors = {
        "t1 (margin > 0)": table["t1_test_err"].transpose("d", "seed").values,
        "t_memorize (end of Stage I)": err_window.transpose("d", "seed").values,
        errors_keys_clean(): err_clean.transpose("d", "seed").values,
        "t_best (oracle)": table["oracle_test_err"].transpose("d", "seed").values,
        "noisy validation": table["validation_test_err"].transpose("d", "seed").values,
        "log-2 rule (tau_hat = tau)": table["log2_test_err"].transpose("d", "seed").values,
        "end of training": table["final_test_err"].transpose("d", "seed").values,
    }
    fits = {}
    for label in ("t_best (oracle)", errors_keys_clean(), "end of training"):
        x = np.repeat(ratio, errors[label].shape[1])
        positive = errors[label].ravel() > 0  # log fit: zeros cannot enter, and it needs
        if positive.sum() > 2 and np.unique(x[positive]).size >= 2:  # two distinct d/n
            fit = analysis.exp_decay_fit(x, errors[label].ravel())
            fits[label.split(" ")[0]] = fit
    floor = 0.5 / sweep_of(ds).cfg.n_test  # half of one test error
    paths = [
        theory_plots.errors_vs_ratio(
            ratio,
            errors,
            {k: (float(np.exp(f.coef[0])), float(f.coef[1])) for k, f in fits.items()},
            out / "early_stopping.png",
            f"n=100, m=10, n SNR^2={n_snr2:g}, tau=0.2: test error where training stops",
            floor=floor,
            # At fixed n SNR^2, Kou et al.'s n ||mu||^4 / (sigma_p^4 d) = (n SNR^2)^2 d / n.
            top_axis=("Kou et al.'s n ||mu||^4 / (sigma_p^4 d)", n_snr2**2),
            bound=("paper's Stage-II bound 0.5 min(tau+, tau-)", stage_two_bound(ds)),
        ),
        stop_steps_plot(ratio, table, t_clean, out / "early_stopping_steps.png"),
    ]
    summary = {
        "d_over_n": ratio.tolist(),
        "kou_ratio": theory.kou_ratio(
            float(ds["n"].max()),
            ds["mu_norm"].isel(seed=0).values,
            ds["sigma_p"].isel(seed=0).values,
            ds["d"].values,
        ).tolist(),
        "errors": {k: [spread(row) for row in v] for k, v in errors.items()},
        "steps": {
            "t_clean": [spread(row) for row in t_clean],
            "t_memorize": [spread(row) for row in times(ds["t_memorize"].transpose("d", "seed"))],
            **{
                rule: [spread(row) for row in table[f"{rule}_step"].transpose("d", "seed").values]
                for rule in early_stopping.RULES
            },
            "t2": [spread(row) for row in times(ds["t2"].transpose("d", "seed"))],
        },
        "fits": {k: {**f.as_dict(), "r2": f.r2, "dof": f.dof} for k, f in fits.items()},
        "zeros_drawn_at": floor,
    }
    paths.append(write_summary(out, summary))
    return paths


def stage_two_bound(ds: xr.Dataset) -> float:
    return float(
        theory.stage_two_error_bound(float(ds["tau_plus"].min()), float(ds["tau_minus"].min()))
    )


def stop_steps_plot(ratio: np.ndarray, table: xr.Dataset, t_clean: np.ndarray, path: Path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.6, 4.0), layout="constrained")
    ax = fig.subplots()
    rows = {"t_clean": t_clean}
    rows |= {
        r: table[f"{r}_step"].transpose("d", "seed").values
        for r in ("oracle", "validation", "log2")
    }
    for i, (label, v) in enumerate(rows.items()):
        ax.plot(ratio, np.nanmean(v, axis=1), "o-", color=f"C{i}", label=label, ms=4)
    ax.set_xlabel("d / n")
    ax.set_ylabel("stopping step (mean over seeds)")
    ax.set_yscale("symlog", linthresh=1)
    ax.legend(fontsize=8)
    save(fig, path)
    return path


# --- sample-selection ------------------------------------------------------------------------

TAU_HATS = (0.1, 0.2, 0.3)


def sample_selection() -> tuple[Sweep, Callable]:
    """Small-loss sample selection along training, and retraining on the selected set (pred. 2).

    Command: python -m sweeps.grid --preset sample-selection
    Runtime: about 1.5 minutes on a 2-core CPU, retraining included (n = 100, d = 200,
      m = 10, n SNR^2 = 8, tau = 0.2, eta = 0.2, 4 seeds, 400 GD steps with every sample's
      loss logged every 2 steps; then 4 x 4 retrainings from the same initialization).
    Regime: ratio n SNR^2 (1 - 2 tau) / 2 = 2.4, above the measured Stage-I boundary
      (docs/reproduction.md, prediction 9). Selections are taken at the end of the Stage-I
      window (the last logged step before t_memorize), where >= 90% of the flipped samples
      still sit above log 2 but the window is about to close: the check that could fail.
    Figures:
      selection.png: precision, recall and F1 (clean samples as positives) of the log-2 rule
        (keep loss < log 2) and of the small-loss rule at assumed rates tau_hat in
        {0.1, 0.2, 0.3} (keep the (1 - tau_hat) n smallest losses) along training, and the
        AUROC of the loss as a flipped-sample detector; dashed line at the median window end.
        Near-perfect selection in Stage I, decaying as the flipped samples are memorized.
      retrain.png: final true-label test error when training from scratch (same init) on all
        samples, on the log-2 selection at the window end, on the small-loss selection
        (tau_hat = tau) there, and on the true clean set.
      summary.json: scores at the window end and at the end, retraining errors per seed.
    """
    cfg = nj.Config(
        n=100,
        d=200,
        m=10,
        steps=400,
        log_every=2,
        n_test=2000,
        eval_every=2,
        log_samples=True,
        engine="auto",
    )
    hp = nj.HParams(eta=0.2, tau_plus=0.2, tau_minus=0.2, sigma_p=1.0, sigma_0=0.001)
    axes = (Axis("n_snr2", (8.0,)),)
    return Sweep("sample-selection", cfg, hp, axes, seeds=4), sample_selection_figures


def sample_selection_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    from noisyjax.analysis import selection

    ds = ds.isel(n_snr2=0)
    scores = selection.selection_metrics(ds, TAU_HATS)
    step = ds["step"].values
    end = times(ds["t_memorize"])
    # The selection is taken at the window's last logged step (before t_memorize; the last
    # step of the run where the window never closes).
    at_t1 = np.clip(np.searchsorted(step, np.nan_to_num(end, nan=step[-1] + 1)) - 1, 0, None)
    t1 = step[at_t1].astype(float)
    curves = {"log 2 rule": _scores(scores, "log2")}
    for tau_hat in TAU_HATS:
        curves[f"small loss, tau_hat={tau_hat:g}"] = _scores(
            scores.sel(tau_hat=tau_hat), "small_loss"
        )
    curves["log 2 rule"]["auroc"] = scores["auroc"]
    paths = [
        theory_plots.selection_curves(
            step,
            curves,
            float(np.nanmedian(t1)),
            out / "selection.png",
            f"n=100, d=200, m=10, n SNR^2={float(ds['n_snr2']):g}, tau=0.2, selection at the "
            "window end",
        )
    ]
    retrained = retrain_errors(ds, out, at_t1)
    paths.append(
        theory_plots.retrain_bars(
            retrained, out / "retrain.png", "Retraining from the same init on each set"
        )
    )

    def at(da: xr.DataArray) -> list[float]:
        return [float(da.isel(seed=s, step=int(i))) for s, i in enumerate(at_t1)]

    summary = {
        "t_stage1": times(ds["t_stage1"]).tolist(),
        "t_memorize": end.tolist(),
        "selection_step": step[at_t1].tolist(),
        "at_window_end": {label: {k: at(v) for k, v in c.items()} for label, c in curves.items()},
        "at_end": {
            label: {k: v.isel(step=-1).values.tolist() for k, v in c.items()}
            for label, c in curves.items()
        },
        "retrain_final_test_err": {k: v.tolist() for k, v in retrained.items()},
        "sweep_final_test_err": ds["test_err"].isel(step=-1).values.tolist(),
    }
    paths.append(write_summary(out, summary))
    return paths


def _scores(scores: xr.Dataset, prefix: str) -> dict[str, xr.DataArray]:
    return {k: scores[f"{prefix}_{k}"] for k in ("precision", "recall", "f1")}


def retrain_errors(ds: xr.Dataset, out: Path, at_t1: np.ndarray) -> dict[str, np.ndarray]:
    """Final test error of training from each run's own init on four sets of samples."""
    import jax

    from noisyjax.analysis import selection
    from noisyjax.synthetic.checkpoints import run_settings
    from noisyjax.synthetic.train import sample_run

    errors: dict[str, list[float]] = {k: [] for k in RETRAIN_SETS}
    for s in range(ds.sizes["seed"]):
        cfg, hp, seed = run_settings(out, n_snr2=float(ds["n_snr2"]), seed=s)
        params, train, test, val = sample_run(jax.random.key(seed), cfg, hp)
        flipped = np.asarray(train.flipped)
        if not np.array_equal(flipped, ds["sample_flipped"].isel(seed=s).values.astype(bool)):
            raise RuntimeError("rebuilt training set differs from the sweep's run")
        loss = ds["sample_loss"].isel(seed=s, step=int(at_t1[s])).values
        keep = {
            "all samples": np.ones_like(flipped),
            "log-2 selection at window end": selection.select_below_log2(loss),
            "small-loss (tau_hat = tau) at window end": selection.select_small_loss(
                loss, float(hp.tau_plus)
            ),
            "true clean set": ~flipped,
        }
        run = jax.jit(selection.train_on_subset, static_argnames="cfg")
        for label, keep_N in keep.items():
            _, metrics = run(params, train, test, keep_N, cfg=cfg, hp=hp)
            errors[label].append(float(metrics["test_err"][-1]))
    return {k: np.asarray(v) for k, v in errors.items()}


RETRAIN_SETS = (
    "all samples",
    "log-2 selection at window end",
    "small-loss (tau_hat = tau) at window end",
    "true clean set",
)
