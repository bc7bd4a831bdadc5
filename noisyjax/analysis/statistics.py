"""Fits for checking the theory's scaling laws: least squares with confidence intervals.

NumPy, with SciPy's Student-t quantile for the interval widths.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.stats

from noisyjax.errors import fail


class LinearFit(NamedTuple):
    """Ordinary least squares y = X beta: estimates, standard errors and two-sided CIs."""

    names: tuple[str, ...]
    coef: np.ndarray  # (K,)
    stderr: np.ndarray  # (K,)
    ci_low: np.ndarray  # (K,)
    ci_high: np.ndarray  # (K,)
    dof: int
    r2: float

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {
            name: {
                "coef": float(c),
                "stderr": float(s),
                "ci_low": float(lo),
                "ci_high": float(hi),
            }
            for name, c, s, lo, hi in zip(
                self.names, self.coef, self.stderr, self.ci_low, self.ci_high, strict=True
            )
        }


def student_t_quantile(p: float, dof: int) -> float:
    """The p-quantile of Student's t with `dof` degrees of freedom (p in (0, 1))."""
    if not 0.0 < p < 1.0:
        fail("p", p, "a number in (0, 1)")
    if dof < 1:
        fail("dof", dof, "an integer >= 1")
    return float(scipy.stats.t.ppf(p, dof))


def least_squares(
    x_RK: np.ndarray, y_R: np.ndarray, names: tuple[str, ...], level: float = 0.95
) -> LinearFit:
    """OLS of y on the columns of x (include a column of ones for an intercept).

    Standard errors from s^2 (X^T X)^-1, intervals coef +- t_{(1+level)/2, R-K} stderr.
    """
    x_RK, y_R = np.asarray(x_RK, float), np.asarray(y_R, float)
    rows, k = x_RK.shape
    if rows <= k:
        fail("rows", rows, f"more rows than the {k} fitted coefficients")
    coef, *_ = np.linalg.lstsq(x_RK, y_R, rcond=None)
    resid = y_R - x_RK @ coef
    dof = rows - k
    s2 = float(resid @ resid) / dof
    cov = s2 * np.linalg.inv(x_RK.T @ x_RK)
    stderr = np.sqrt(np.diag(cov))
    half = student_t_quantile((1 + level) / 2, dof) * stderr
    total = float(np.sum((y_R - y_R.mean()) ** 2))
    r2 = 1.0 - float(resid @ resid) / total if total > 0 else float("nan")
    return LinearFit(tuple(names), coef, stderr, coef - half, coef + half, dof, r2)


def loglog_fit(columns: dict[str, np.ndarray], y: np.ndarray, level: float = 0.95) -> LinearFit:
    """Fit log y = a + sum_k b_k log x_k: the power-law exponents b_k with CIs.

    Rows where y is not finite and positive are dropped (a time that never came).
    """
    y = np.asarray(y, float).ravel()
    xs = {k: np.asarray(v, float).ravel() for k, v in columns.items()}
    keep = np.isfinite(y) & (y > 0)
    x_RK = np.stack([np.ones(keep.sum())] + [np.log(v[keep]) for v in xs.values()], axis=1)
    return least_squares(x_RK, np.log(y[keep]), ("log_scale",) + tuple(xs), level)


def exp_decay_fit(x: np.ndarray, y: np.ndarray, level: float = 0.95) -> LinearFit:
    """Fit y = A exp(-c x) by least squares on log y (rows with y <= 0 dropped).

    Coefficients: `log_scale` (log A) and `rate` (c, sign flipped so that decay is positive).
    """
    x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
    keep = np.isfinite(y) & (y > 0) & np.isfinite(x)
    x_RK = np.stack([np.ones(keep.sum()), -x[keep]], axis=1)
    return least_squares(x_RK, np.log(y[keep]), ("log_scale", "rate"), level)


def first_step_below(step_T: np.ndarray, v_RT: np.ndarray, level: float) -> np.ndarray:
    """The first logged step at which a trajectory is below `level` (NaN if never).

    Used for threshold definitions of a stage's end, e.g. the mean clean training loss
    falling below a constant (the theory's Stage I ends when the clean losses are O(1) small).
    """
    below_RT = np.asarray(v_RT, float) < level
    step_T = np.asarray(step_T, float)
    return np.where(below_RT.any(-1), step_T[np.argmax(below_RT, axis=-1)], np.nan)
