"""Noisy-label detectors (noisyjax.analysis.detectors), each against a reference computation:
scikit-learn's AUROC and GaussianMixture, AUM and prediction changes by hand, confident learning
by a loop over samples; and the per-sample records a run logs for them."""

import itertools

import jax
import numpy as np
import pytest

import noisyjax as nj
from noisyjax.analysis import detectors as det


def records(seed=0, n=60, steps=8, rate=0.25):
    """Synthetic records: clean margins drift up, flipped ones stay low then rise (memorized)."""
    rng = np.random.default_rng(seed)
    flipped = rng.random(n) < rate
    label = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    t = np.arange(steps)[:, None]
    margin = np.where(flipped, -1.0 + 0.4 * t, 0.5 + 0.3 * t) + rng.normal(0, 0.6, (steps, n))
    margin[:, -2:] = np.nan  # padding samples
    loss = np.log1p(np.exp(-margin))
    return loss, margin, label, flipped


def test_aum_is_the_running_mean_of_the_margin():
    _, margin, _, _ = records()
    d = det.aum(margin)
    for t, i in itertools.product((0, 3, 7), (0, 5, 17)):
        assert d.score_TN[t, i] == pytest.approx(np.mean(margin[: t + 1, i]))
        assert d.selected_TN[t, i] == (np.mean(margin[: t + 1, i]) > 0)
    assert not d.selected_TN[:, -2:].any() and np.isnan(d.score_TN[:, -1]).all()


def test_auroc_matches_scikit_learn():
    from sklearn.metrics import roc_auc_score

    loss, margin, label, flipped = records(seed=3)
    for detection in (det.aum(margin), det.log2_rule(loss), det.small_loss(loss, 0.25)):
        scores = det.evaluate(detection, flipped)
        for t in (0, 4, 7):
            active = np.isfinite(detection.score_TN[t])
            expected = roc_auc_score(~flipped[active], detection.score_TN[t, active])
            assert scores["auroc"][t] == pytest.approx(expected, abs=1e-12)


def test_gmm_matches_scikit_learns_mixture_on_the_scaled_losses():
    from sklearn.mixture import GaussianMixture

    loss, _, _, flipped = records(seed=1)
    d = det.gmm(loss)
    t = 2
    x = loss[t, :-2]
    x = ((x - x.min()) / np.ptp(x))[:, None]
    ref = GaussianMixture(2, max_iter=100, tol=1e-3, reg_covar=5e-4, random_state=0).fit(x)
    low = int(np.argmin(ref.means_[:, 0]))
    np.testing.assert_allclose(d.score_TN[t, :-2], ref.predict_proba(x)[:, low])
    assert np.isnan(d.score_TN[t, -2:]).all()
    # Well separated at that step: the mixture finds the flipped samples.
    scores = det.evaluate(d, flipped)
    assert scores["precision"][t] > 0.9 and scores["auroc"][t] > 0.9


def confident_learning_by_loops(margin_N, label_N):
    """Confident learning written sample by sample, for one step (the reference)."""
    p = [
        [1 - 1 / (1 + np.exp(-y * z)), 1 / (1 + np.exp(-y * z))] for z, y in zip(margin_N, label_N)
    ]
    obs = [int(y > 0) for y in label_N]
    t = [np.mean([p[i][j] for i in range(len(p)) if obs[i] == j]) for j in (0, 1)]
    joint = np.zeros((2, 2))
    off = []
    for i in range(len(p)):
        above = [j for j in (0, 1) if p[i][j] >= t[j]]
        if not above:
            off.append(False)
            continue
        guess = max(above, key=lambda j: p[i][j])
        joint[obs[i], guess] += 1
        off.append(guess != obs[i])
    counts = np.bincount(obs, minlength=2)
    calibrated = joint / joint.sum(axis=1, keepdims=True) * counts[:, None]
    q = calibrated / calibrated.sum()
    return q[0, 1] / q[:, 1].sum(), q[1, 0] / q[:, 0].sum(), ~np.array(off)


def test_confident_learning_matches_a_sample_by_sample_loop():
    loss, margin, label, flipped = records(seed=2)
    detection, rates = det.confident_learning(margin, label)
    for t in (0, 3, 7):
        tau_plus, tau_minus, kept = confident_learning_by_loops(margin[t, :-2], label[:-2])
        assert rates.tau_plus_T[t] == pytest.approx(tau_plus)
        assert rates.tau_minus_T[t] == pytest.approx(tau_minus)
        np.testing.assert_array_equal(detection.selected_TN[t, :-2], kept)
    # Early on, the flipped samples sit against their observed labels: both rates near 0.25.
    assert abs(rates.tau_plus_T[0] - 0.25) < 0.15 and abs(rates.tau_minus_T[0] - 0.25) < 0.15
    with pytest.raises(nj.ConfigError, match="label_N="):
        det.confident_learning(margin, np.zeros_like(label))


def test_prediction_changes_and_labelwave():
    label = np.array([1.0, -1.0, 1.0])
    margin = np.array(
        [[-1, 1, -1], [1, 1, -1], [1, 1, 1], [1, 1, 1], [1, -1, 1], [-1, -1, -1], [-1, -1, -1]],
        float,
    )
    np.testing.assert_array_equal(det.prediction_changes(margin, label)[1:], [1, 1, 0, 1, 2, 0])
    # Changes fall, then rise (the flipped ones memorized): stop at the first minimum.
    changes = np.array([9, 7, 4, 2, 1, 3, 5, 8, 6, 2, 1, 0], float)
    wave = np.zeros((len(changes) + 1, 12))  # the first c samples change at step t + 1
    sign = np.ones(12)
    for t, c in enumerate(changes.astype(int)):
        sign[:c] *= -1
        wave[t + 1] = sign
    wave[0] = 1.0
    np.testing.assert_array_equal(det.prediction_changes(wave, np.ones(12))[1:], changes)
    assert det.labelwave(wave, np.ones(12), window=1, patience=3) == 5  # changes[4] = 1
    smoothed = det.labelwave(wave, np.ones(12), window=3, patience=3)
    assert 4 <= smoothed <= 6


def test_a_run_logs_the_records_the_detectors_read():
    cfg = nj.Config(n=24, d=60, m=4, steps=40, log_every=5, n_test=50, log_samples=True)
    hp = nj.HParams(eta=0.5, tau_plus=0.25, tau_minus=0.25, mu_norm=6.0, sigma_0=0.01)
    _, metrics = jax.jit(nj.make_train(cfg))(jax.random.key(0), hp)
    margin = np.asarray(metrics["sample_margin"], float)
    loss = np.asarray(metrics["sample_loss"], float)
    label = np.asarray(metrics["sample_label"], float)
    assert margin.shape == loss.shape == (cfg.n_logs, cfg.n) and set(label) <= {-1.0, 1.0}
    np.testing.assert_allclose(loss, np.log1p(np.exp(-margin)), rtol=1e-5, atol=1e-6)
    flipped = np.asarray(metrics["sample_flipped"], bool)
    # Recomputed from the logged margins, the training accuracies are the logged ones.
    np.testing.assert_allclose(
        (margin > 0)[:, flipped].mean(axis=1), metrics["train_acc_noisy"], atol=1e-6
    )
    assert det.evaluate(det.aum(margin), flipped)["auroc"].shape == (cfg.n_logs,)


def test_the_kept_sets_stop_is_the_start_of_its_first_plateau():
    kept = np.array(
        [
            [1, 0, 0, 0],
            [1, 1, 0, 0],
            [1, 1, 1, 0],
            [1, 1, 1, 0],
            [1, 1, 1, 0],
            [1, 1, 1, 0],
            [1, 1, 1, 1],
        ],
        bool,
    )
    detection = det.Detection(np.zeros(kept.shape), kept)
    assert det.stable_set_stop(detection, tolerance=0.0, patience=3) == 2
    assert det.stable_set_stop(detection, tolerance=0.0, patience=5) == 6  # none: the last
    np.testing.assert_allclose(
        det.implied_noise_rate(detection), [0.75, 0.5, 0.25, 0.25, 0.25, 0.25, 0.0]
    )
