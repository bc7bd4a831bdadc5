"""Early-stopping rules applicable to any logged run (docs/science.md sections 1, 5 and 6.7).

Each rule picks a logged step from the run's trajectories and reports where it stopped and the
true-label test error there:
  oracle       t_best over the logged steps: the lowest true-label test error (needs the true
               test labels, so it is a bound, not a usable rule).
  validation   the lowest error on a held-out validation set with *noisy* labels
               (`val_err_noisy_labels`, from `Config(n_val=...)`); with `patience` P it stops
               online, at the best step once P logged points have passed without improvement.
  log2         the log-2 separation (section 6.2): at the end of Stage I exactly the clean
               samples have loss < log 2, so the fraction of training samples below log 2
               (equal to the training accuracy w.r.t. the observed labels, since loss < log 2
               iff y_obs f > 0) reaches 1 - tau. The rule stops at the first logged step where
               it is >= 1 - tau_hat, tau_hat being the assumed noise rate; it uses nothing but
               the training losses.
Ties go to the earliest step. Functions on arrays take the step axis last; `stopping_table`
applies all rules to every run of a sweep Dataset.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import xarray as xr

from noisyjax.errors import fail

RULES = ("oracle", "validation", "log2")


class Stop(NamedTuple):
    """Where a rule stopped: index into the logged steps, the step, and the test error there."""

    index: np.ndarray
    step: np.ndarray
    test_err: np.ndarray


def _at(index_R: np.ndarray, step_T: np.ndarray, test_err_RT: np.ndarray) -> Stop:
    test_err = np.take_along_axis(test_err_RT, index_R[..., None], axis=-1)[..., 0]
    return Stop(index_R, np.asarray(step_T)[index_R], test_err)


def first_argmin(v_RT: np.ndarray) -> np.ndarray:
    """Index of the first minimum along the last axis, NaN ignored (0 if all NaN)."""
    v_RT = np.asarray(v_RT, float)
    return np.argmin(np.where(np.isnan(v_RT), np.inf, v_RT), axis=-1)


def oracle(step_T: np.ndarray, test_err_RT: np.ndarray) -> Stop:
    """Stop at the lowest true-label test error (t_best on the logged steps)."""
    return _at(first_argmin(test_err_RT), step_T, np.asarray(test_err_RT, float))


def validation(
    step_T: np.ndarray,
    val_err_noisy_RT: np.ndarray,
    test_err_RT: np.ndarray,
    patience: int | None = None,
) -> Stop:
    """Stop at the lowest noisy-label validation error; online with `patience` logged points."""
    val_RT = np.where(np.isnan(val_err_noisy_RT), np.inf, np.asarray(val_err_noisy_RT, float))
    if patience is None:
        index = first_argmin(val_RT)
    else:
        if patience < 1:
            fail("patience", patience, "an integer >= 1, or None (the offline minimum)")
        best_RT = np.minimum.accumulate(val_RT, axis=-1)
        # best-so-far index; training stops once `patience` points pass without a new best.
        t = np.arange(val_RT.shape[-1])
        improved_RT = np.concatenate(
            [np.ones_like(val_RT[..., :1], bool), val_RT[..., 1:] < best_RT[..., :-1]], axis=-1
        )
        last_best_RT = np.maximum.accumulate(np.where(improved_RT, t, 0), axis=-1)
        stalled_RT = t - last_best_RT >= patience
        stop_RT = np.where(stalled_RT.any(-1), np.argmax(stalled_RT, axis=-1), len(t) - 1)
        index = np.take_along_axis(last_best_RT, stop_RT[..., None], axis=-1)[..., 0]
    return _at(index, step_T, np.asarray(test_err_RT, float))


def check_tau_hat(tau_hat: float | np.ndarray) -> np.ndarray:
    """An assumed noise rate tau_hat (a number, or one per run) as floats, each in [0, 0.5): the
    range of the flip rates themselves (docs/science.md section 2); at 1/2 the observed labels
    carry no information. The log-2 and small-loss rules both check it here."""
    tau_hat_R = np.asarray(tau_hat, float)
    if not np.all((tau_hat_R >= 0.0) & (tau_hat_R < 0.5)):  # NaN fails too
        fail("tau_hat", tau_hat, "numbers in [0, 0.5)")
    return tau_hat_R


def log2(
    step_T: np.ndarray,
    frac_below_log2_RT: np.ndarray,
    test_err_RT: np.ndarray,
    tau_hat: float | np.ndarray,
) -> Stop:
    """Stop at the first logged step with a fraction >= 1 - tau_hat of training losses < log 2.

    If it never gets there the rule stops at the last step. `frac_below_log2_RT` is the
    training accuracy w.r.t. the observed labels (loss < log 2 iff y_obs f > 0); `tau_hat` is
    a number or one per run (shape R).
    """
    tau_hat_R = check_tau_hat(tau_hat)
    # 1e-9: a fraction computed as k / n must count as reaching (1 - tau_hat) when equal.
    level_R1 = (1.0 - tau_hat_R - 1e-9)[..., None]
    reached_RT = np.asarray(frac_below_log2_RT, float) >= level_R1
    index = np.where(reached_RT.any(-1), np.argmax(reached_RT, axis=-1), reached_RT.shape[-1] - 1)
    return _at(index, step_T, np.asarray(test_err_RT, float))


def stopping_table(
    ds: xr.Dataset, tau_hat: float | None = None, patience: int | None = None
) -> xr.Dataset:
    """Every rule on every run of a sweep: `<rule>_step` and `<rule>_test_err`, plus the
    end-of-training error `final_test_err` and the error at t1, `t1_test_err` (as recorded).

    `tau_hat` defaults to each run's (tau_plus + tau_minus) / 2, its flip rate with balanced
    classes (pass a value to mis-specify it).
    The validation rule needs `val_err_noisy_labels` (a sweep run with `Config(n_val > 0)`).
    """
    step_T = ds["step"].values
    test = ds["test_err"].transpose(..., "step")
    dims = test.dims[:-1]
    out: dict[str, xr.DataArray] = {}

    def put(rule: str, stop: Stop) -> None:
        out[f"{rule}_step"] = xr.DataArray(stop.step, dims=dims)
        out[f"{rule}_test_err"] = xr.DataArray(stop.test_err, dims=dims)

    put("oracle", oracle(step_T, test.values))
    if "val_err_noisy_labels" in ds:
        val = ds["val_err_noisy_labels"].transpose(*test.dims).values
        put("validation", validation(step_T, val, test.values, patience))
    acc = ds["train_acc"].transpose(*test.dims).values
    if tau_hat is None:
        # The overall flip rate with balanced classes: (tau_plus + tau_minus) / 2.
        tau = (0.5 * (ds["tau_plus"] + ds["tau_minus"])).broadcast_like(
            test.isel(step=0, drop=True)
        )
        tau_hat = tau.transpose(*dims).values
    put("log2", log2(step_T, acc, test.values, tau_hat))
    out["final_test_err"] = test.isel(step=-1, drop=True)
    if "t1_test_err" in ds:
        out["t1_test_err"] = ds["t1_test_err"]
    return xr.Dataset(out, coords={k: v for k, v in test.isel(step=0, drop=True).coords.items()})
