"""Noisy-label detectors and validation-free stopping, on one run's per-sample records.

The records are what a run logs with `Config(log_samples=True)` (results.nc names in brackets):
  loss_TN    training loss of every sample on its observed label (`sample_loss`), NaN on padding
  margin_TN  y_obs f of every sample (`sample_margin`): positive when its observed label is
             predicted; the loss is softplus(-margin)
  label_N    the observed labels, +1 or -1 (`sample_label`)
  flipped_N  the truth the detectors never see (`sample_flipped`)

A detector returns a `Detection`: a score per sample and logged step (higher: more likely clean)
and the set it keeps as clean. The practitioners' methods, each on the records alone:
  small_loss          the round((1 - tau_hat) n) smallest losses, for an assumed rate tau_hat
                      (Co-teaching's selection; `selection.select_small_loss`)
  log2_rule           loss < log 2, i.e. margin > 0 (the paper's threshold)
  aum                 area under the margin (Pleiss et al. 2020): the mean margin over the
                      logged steps up to each step; kept where it is positive (with one logit,
                      the assigned logit minus the other is y_obs f)
  gmm                 a two-component Gaussian mixture on the step's losses, min-max scaled
                      (DivideMix, Li et al. 2020): kept where the low-loss component's
                      posterior exceeds 0.5 (scikit-learn's GaussianMixture)
  confident_learning  confident learning (Northcutt et al. 2021, as cleanlab): per-class
                      thresholds on the predicted probabilities sigmoid(f), the confident joint,
                      calibrated to the class counts; it estimates tau_plus and tau_minus, and
                      keeps the samples the joint does not put off its diagonal
`evaluate` scores a detection against the truth: precision, recall and F1 of the kept set
(clean samples are the positive class, `selection.selection_scores`) and the AUROC of the
score as a detector of clean samples, per logged step.

Stopping without validation data:
  prediction_changes  how many training predictions sign(f) changed since the previous step
  labelwave           LabelWave (Yuan et al. 2024): the first minimum of the moving average of
                      those changes, which falls while the clean samples are learned and rises
                      when the flipped ones start to be memorized
  stable_set_stop     the stopping point a detector's kept set implies: the first logged step
                      from which the set stays put (at most 1% of the samples change in each
                      of the next 3 intervals), i.e. the start of its first plateau; in Stage I
                      that plateau is the clean set

Shape letters: T logged steps, N samples. Every function is plain NumPy on one run's arrays.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from noisyjax.analysis.selection import (
    loss_auroc,
    select_below_log2,
    select_small_loss,
    selection_scores,
)
from noisyjax.errors import check_int, fail


class Detection(NamedTuple):
    """A detector's output on one run: score_TN (higher: more likely clean; NaN on padding)
    and selected_TN (kept as clean)."""

    score_TN: np.ndarray
    selected_TN: np.ndarray


class NoiseRates(NamedTuple):
    """Confident learning's estimates, per logged step: tau_plus (P(observed -1 | true +1))
    and tau_minus (P(observed +1 | true -1))."""

    tau_plus_T: np.ndarray
    tau_minus_T: np.ndarray


def small_loss(loss_TN: np.ndarray, tau_hat: float) -> Detection:
    loss_TN = np.asarray(loss_TN, float)
    return Detection(-loss_TN, select_small_loss(loss_TN, tau_hat))


def log2_rule(loss_TN: np.ndarray) -> Detection:
    loss_TN = np.asarray(loss_TN, float)
    return Detection(-loss_TN, select_below_log2(loss_TN))


def aum(margin_TN: np.ndarray) -> Detection:
    """The area under the margin up to each logged step: the running mean of y_obs f."""
    margin_TN = np.asarray(margin_TN, float)
    count_T = np.arange(1, margin_TN.shape[0] + 1)[:, None]
    score_TN = np.cumsum(margin_TN, axis=0) / count_T
    return Detection(score_TN, np.where(np.isnan(score_TN), False, score_TN > 0))


def gmm(loss_TN: np.ndarray, seed: int = 0) -> Detection:
    """At each logged step, a two-component Gaussian mixture on the min-max scaled losses of
    the active samples; the score is the posterior of the component with the smaller mean."""
    from sklearn.mixture import GaussianMixture

    loss_TN = np.asarray(loss_TN, float)
    score_TN = np.full(loss_TN.shape, np.nan)
    for t, loss_N in enumerate(loss_TN):
        active = np.isfinite(loss_N)
        x = loss_N[active]
        if len(x) < 2 or np.ptp(x) == 0:
            score_TN[t, active] = 0.5  # nothing to separate
            continue
        x = ((x - x.min()) / np.ptp(x))[:, None]
        mixture = GaussianMixture(2, max_iter=100, tol=1e-3, reg_covar=5e-4, random_state=seed)
        mixture.fit(x)
        low = int(np.argmin(mixture.means_[:, 0]))
        score_TN[t, active] = mixture.predict_proba(x)[:, low]
    return Detection(score_TN, np.where(np.isnan(score_TN), False, score_TN > 0.5))


def confident_learning(margin_TN: np.ndarray, label_N: np.ndarray) -> tuple[Detection, NoiseRates]:
    """Confident learning on the predicted probabilities p(+1 | x) = sigmoid(f), f = y_obs
    margin, at each logged step.

    Per observed class j, the threshold t_j is the mean probability of class j over the
    samples labelled j. A sample labelled i counts in the confident joint C[i, j] for the class
    j whose probability reaches t_j (the likelier one when both do; not at all when neither
    does). C is calibrated so that each row sums to the count of its observed label, and
    normalized into the joint Q of (observed, true); tau_plus = Q[-1, +1] / sum_i Q[i, +1]
    and tau_minus = Q[+1, -1] / sum_i Q[i, -1]. Kept: the samples not counted off the
    diagonal; score: the probability of the observed label (self-confidence).
    """
    margin_TN = np.asarray(margin_TN, float)
    label_N = np.asarray(label_N, float)
    if not np.isin(label_N[np.isfinite(label_N)], (-1.0, 1.0)).all():
        fail("label_N", np.unique(label_N), "+1 and -1 (the observed labels)")
    with np.errstate(over="ignore"):
        p_plus_TN = 1.0 / (1.0 + np.exp(-label_N * margin_TN))  # sigmoid(f)
    prob_TNC = np.stack([1.0 - p_plus_TN, p_plus_TN], axis=-1)  # classes (-1, +1)
    observed_N = (label_N > 0).astype(int)
    active_TN = np.isfinite(margin_TN)
    tau_plus_T = np.full(len(margin_TN), np.nan)
    tau_minus_T = np.full(len(margin_TN), np.nan)
    selected_TN = np.zeros(margin_TN.shape, bool)
    score_TN = np.where(
        active_TN, np.take_along_axis(prob_TNC, observed_N[None, :, None], -1)[..., 0], np.nan
    )
    for t in range(len(margin_TN)):
        active = active_TN[t]
        prob_NC, obs_N = prob_TNC[t, active], observed_N[active]
        counts = np.bincount(obs_N, minlength=2)
        if (counts == 0).any():
            continue
        thresholds = np.array([prob_NC[obs_N == j, j].mean() for j in (0, 1)])
        above_NC = prob_NC >= thresholds
        guess_N = np.where(
            above_NC.all(axis=1), prob_NC.argmax(axis=1), np.where(above_NC[:, 1], 1, 0)
        )
        confident_N = above_NC.any(axis=1)
        joint = np.zeros((2, 2))
        np.add.at(joint, (obs_N[confident_N], guess_N[confident_N]), 1.0)
        rows = joint.sum(axis=1, keepdims=True)
        calibrated = (
            np.divide(joint, rows, out=np.zeros_like(joint), where=rows > 0) * counts[:, None]
        )
        q = calibrated / calibrated.sum()
        true_totals = q.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            tau_plus_T[t] = q[0, 1] / true_totals[1]  # observed -1, true +1
            tau_minus_T[t] = q[1, 0] / true_totals[0]  # observed +1, true -1
        selected_TN[t, active] = ~(confident_N & (guess_N != obs_N))  # not off the diagonal
    return Detection(score_TN, selected_TN), NoiseRates(tau_plus_T, tau_minus_T)


def evaluate(detection: Detection, flipped_N: np.ndarray) -> dict[str, np.ndarray]:
    """Per logged step: precision, recall and F1 of the kept set (clean: positive) and the
    AUROC of the score as a detector of clean samples (ties 1/2), over the active samples."""
    flipped_N = np.asarray(flipped_N, bool)
    active_TN = np.isfinite(detection.score_TN)
    out = selection_scores(detection.selected_TN, flipped_N, active_TN)
    # P(score of a clean sample > score of a flipped one) = P(-score flipped > -score clean).
    out["auroc"] = loss_auroc(-np.asarray(detection.score_TN, float), flipped_N)
    return out


def prediction_changes(margin_TN: np.ndarray, label_N: np.ndarray) -> np.ndarray:
    """How many active samples' predicted labels sign(f) changed since the previous logged
    step (the first step: NaN)."""
    margin_TN = np.asarray(margin_TN, float)
    predicted_TN = np.sign(np.asarray(label_N, float) * margin_TN)
    changed = (predicted_TN[1:] != predicted_TN[:-1]) & np.isfinite(margin_TN[1:])
    return np.concatenate([[np.nan], changed.sum(axis=1).astype(float)])


def labelwave(
    margin_TN: np.ndarray, label_N: np.ndarray, window: int = 3, patience: int = 3
) -> int:
    """LabelWave's stopping index: the prediction changes smoothed by a trailing moving
    average of `window` logged steps; the first index whose smoothed count is below each of
    the next `patience` (a minimum the count then rises from); where there is none, the index
    of the smallest smoothed count."""
    check_int("window", window)
    check_int("patience", patience)
    changes_T = prediction_changes(margin_TN, label_N)[1:]
    if not len(changes_T):
        return 0
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, changes_T[0]), changes_T])
    smooth_T = np.convolve(padded, kernel, mode="valid")
    for t in range(len(smooth_T) - patience):
        if (smooth_T[t] < smooth_T[t + 1 : t + 1 + patience]).all():
            return t + 1  # changes_T[t] is between logged steps t and t + 1
    return int(np.argmin(smooth_T)) + 1


def stable_set_stop(detection: Detection, tolerance: float = 0.01, patience: int = 3) -> int:
    """The first logged index from which the kept set changes by at most `tolerance` of the
    active samples in each of the next `patience` intervals; the last index if there is none.
    (The index where the set is smallest is no rule: at initialization about half of the
    predictions are wrong, so every detector keeps the fewest samples there.)"""
    check_int("patience", patience)
    kept_TN = np.asarray(detection.selected_TN, bool)
    active = max(int(np.isfinite(detection.score_TN).sum(axis=-1).max()), 1)
    changed_T = np.sum(kept_TN[1:] != kept_TN[:-1], axis=-1)
    for t in range(len(changed_T) - patience + 1):
        if (changed_T[t : t + patience] <= tolerance * active).all():
            return t
    return len(kept_TN) - 1


def implied_noise_rate(detection: Detection) -> np.ndarray:
    """The noise rate a detector's kept set implies, per logged step: the fraction of the
    active samples it sets apart."""
    active_T = np.isfinite(detection.score_TN).sum(axis=-1)
    kept_T = np.sum(detection.selected_TN, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(active_T > 0, 1.0 - kept_T / active_T, np.nan)
