"""Selection metrics against brute-force loops on small arrays; subset training against slicing."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr
from sklearn.metrics import roc_auc_score

import noisyjax as nj
from noisyjax.analysis import selection
from noisyjax.errors import ConfigError
from noisyjax.synthetic.metrics import auroc


def brute_scores(kept, flipped, active):
    tp = sum(1 for k, f, a in zip(kept, flipped, active) if k and a and not f)
    n_kept = sum(1 for k, a in zip(kept, active) if k and a)
    n_clean = sum(1 for f, a in zip(flipped, active) if a and not f)
    p = tp / n_kept if n_kept else math.nan
    r = tp / n_clean if n_clean else math.nan
    f1 = math.nan if math.isnan(p) or math.isnan(r) else (2 * p * r / (p + r) if p + r else 0.0)
    return p, r, f1


def brute_auroc(loss, flipped):
    pos = [v for v, f in zip(loss, flipped) if f and not math.isnan(v)]
    neg = [v for v, f in zip(loss, flipped) if not f and not math.isnan(v)]
    if not pos or not neg:
        return math.nan
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def random_case(rng, t=5, n=9):
    loss = rng.exponential(0.7, (t, n)).round(1)  # rounding makes ties
    loss[:, -1] = np.nan  # a padding sample
    flipped = rng.random(n) < 0.35
    flipped[:2] = [True, False]
    return loss, flipped


def test_log2_rule_and_scores_match_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        loss, flipped = random_case(rng)
        kept = selection.select_below_log2(loss)
        active = ~np.isnan(loss[0])
        scores = selection.selection_scores(kept, flipped, active)
        for t in range(loss.shape[0]):
            assert list(kept[t]) == [bool(v < math.log(2)) for v in loss[t]]
            expected = brute_scores(kept[t], flipped, active)
            got = [scores[k][t] for k in ("precision", "recall", "f1")]
            np.testing.assert_allclose(got, expected, equal_nan=True)


@pytest.mark.parametrize("tau_hat", [0.0, 0.1, 0.25, 0.4])
def test_small_loss_rule_matches_brute_force(tau_hat):
    rng = np.random.default_rng(1)
    for _ in range(20):
        loss, _ = random_case(rng)
        kept = selection.select_small_loss(loss, tau_hat)
        for t in range(loss.shape[0]):
            active = [i for i in range(loss.shape[1]) if not math.isnan(loss[t, i])]
            count = round((1 - tau_hat) * len(active))
            chosen = sorted(active, key=lambda i: (loss[t, i], i))[:count]
            assert set(np.flatnonzero(kept[t])) == set(chosen)


def test_auroc_matches_brute_force_and_degenerate_cases():
    rng = np.random.default_rng(2)
    for _ in range(20):
        loss, flipped = random_case(rng)
        got = selection.loss_auroc(loss, flipped)
        np.testing.assert_allclose(got, [brute_auroc(row, flipped) for row in loss])
    assert np.isnan(selection.loss_auroc(np.ones((1, 3)), np.zeros(3, bool))[0])
    assert selection.loss_auroc(np.array([[0.1, 2.0]]), np.array([False, True]))[0] == 1.0
    with jax.enable_x64(False):  # float64 losses are compared as float64 whatever the setting
        close = selection.loss_auroc(np.array([[1.0, 1.0 + 1e-12]]), np.array([False, True]))
    assert close.dtype == np.float64 and close[0] == 1.0


def pairwise_auroc(score_N, positive_N, negative_N):
    """The O(N^2) pairwise AUROC the sweeps logged before the rank-based one (same float ops)."""
    pairs_NN = positive_N[:, None] & negative_N[None, :]
    diff_NN = score_N[:, None] - score_N[None, :]
    wins_NN = jnp.where(diff_NN > 0, 1.0, jnp.where(diff_NN == 0, 0.5, 0.0)).astype(score_N.dtype)
    count = jnp.sum(pairs_NN).astype(score_N.dtype)
    value = jnp.sum(jnp.where(pairs_NN, wins_NN, 0.0)) / jnp.maximum(count, 1.0)
    return jnp.where(count > 0, value, jnp.nan)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rank_auroc_is_the_pairwise_auroc_bit_for_bit(dtype):
    """Ties, masks, overlapping or empty classes, NaN and infinite scores, under jit and vmap."""
    rng = np.random.default_rng(3)
    for trial in range(12):
        n = int(rng.integers(1, 300))
        score_RN = rng.integers(0, 5, (4, n)).astype(dtype)  # many ties
        if trial % 2:
            score_RN = np.log1p(np.exp(-rng.normal(0, 4, (4, n)))).astype(dtype)
        if trial % 3 == 0:
            score_RN[rng.random((4, n)) < 0.1] = np.nan
            score_RN[rng.random((4, n)) < 0.1] = np.inf
            score_RN[rng.random((4, n)) < 0.05] = -np.inf
        active_RN = rng.random((4, n)) < 0.9
        flipped_RN = rng.random((4, n)) < 0.3
        positive_RN, negative_RN = active_RN & flipped_RN, active_RN & ~flipped_RN
        if trial == 4:
            positive_RN[:] = False
        if trial == 5:
            negative_RN = active_RN  # a sample on both sides ties with itself
        args = tuple(jnp.asarray(a) for a in (score_RN, positive_RN, negative_RN))
        got = np.asarray(jax.jit(jax.vmap(auroc))(*args))
        expected = np.asarray(jax.jit(jax.vmap(pairwise_auroc))(*args))
        assert got.dtype == dtype and got.tobytes() == expected.tobytes(), trial


def test_rank_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(4)
    for _ in range(10):
        score = rng.integers(0, 8, 500).astype(np.float64)
        positive = rng.random(500) < 0.25
        got = float(auroc(jnp.asarray(score), jnp.asarray(positive), jnp.asarray(~positive)))
        assert got == pytest.approx(roc_auc_score(positive, score), rel=1e-12)


def test_scores_degenerate_cases_and_bad_input():
    flipped = np.array([False, True])
    nothing = selection.selection_scores(np.array([[False, False]]), flipped)
    assert np.isnan(nothing["precision"][0]) and nothing["recall"][0] == 0
    only_flipped = selection.selection_scores(np.array([[False, True]]), flipped)
    assert only_flipped["precision"][0] == 0 and only_flipped["f1"][0] == 0
    for tau_hat in (1.0, 0.5, -0.1, math.nan):  # the range of the log-2 rule's tau_hat too
        with pytest.raises(ConfigError, match="tau_hat"):
            selection.select_small_loss(np.zeros((1, 3)), tau_hat)


def test_selection_metrics_on_a_dataset():
    rng = np.random.default_rng(3)
    loss = rng.exponential(0.7, (2, 4, 6))  # (seed, step, sample)
    flipped = np.array([[True, False, False, True, False, False]] * 2)
    ds = xr.Dataset(
        {
            "sample_loss": (("seed", "step", "sample"), loss),
            "sample_flipped": (("seed", "sample"), flipped),
        }
    )
    out = selection.selection_metrics(ds, (0.2, 1 / 3))
    assert out["small_loss_f1"].sizes == {"seed": 2, "step": 4, "tau_hat": 2}
    s, t = 1, 2
    kept = selection.select_small_loss(loss[s, t], 1 / 3)
    expected = brute_scores(kept, flipped[s], [True] * 6)
    got = out[["small_loss_precision", "small_loss_recall", "small_loss_f1"]].isel(
        seed=s, step=t, tau_hat=1
    )
    np.testing.assert_allclose([float(v) for v in got.values()], expected)
    np.testing.assert_allclose(
        float(out["log2_recall"][s, t]),
        brute_scores(loss[s, t] < math.log(2), flipped[s], [True] * 6)[1],
    )
    assert float(out["auroc"][s, t]) == pytest.approx(brute_auroc(loss[s, t], flipped[s]))
    with pytest.raises(ConfigError, match="log_samples"):
        selection.selection_metrics(ds.drop_vars("sample_loss"), (0.2,))


def test_train_on_subset_equals_training_on_the_sliced_set():
    cfg = nj.Config(n=12, d=30, m=3, steps=20, log_every=5, n_test=16, dtype="float64")
    hp = nj.HParams(eta=0.5, tau_plus=0.25, tau_minus=0.25, mu_norm=3.0, sigma_0=0.01)
    k_data, k_init = jax.random.split(jax.random.key(0))
    train = nj.sample(k_data, cfg, hp)
    test = nj.sample(k_data, cfg, hp, split="test")
    params = nj.init_params(k_init, cfg, hp)
    keep = np.arange(cfg.n) % 3 != 0
    state, _ = selection.train_on_subset(params, train, test, keep, cfg, hp)
    sliced = jax.tree.map(lambda a: a[keep] if a.shape[:1] == (cfg.n,) else a, train)
    ref, _ = nj.fit(params, sliced, test, cfg.replace(n=int(keep.sum())), hp)
    np.testing.assert_allclose(state.params["w"], ref.params["w"], rtol=1e-10, atol=1e-12)
