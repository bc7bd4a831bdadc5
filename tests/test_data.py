"""The sampler: labels, flips, noise geometry, key discipline and padding exactness."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import noisyjax as nj

CFG = nj.Config(n=64, d=40, m=3, steps=10, log_every=5, n_test=32)


def test_shapes_and_patch_structure():
    hp = nj.HParams(mu_norm=3.0)
    b = nj.sample(jax.random.key(0), CFG, hp)
    assert b.x.shape == (64, 2, 40) and b.y.shape == b.y_obs.shape == b.flipped.shape == (64,)
    np.testing.assert_allclose(b.x[:, 0], b.y[:, None] * b.mu[None, :])
    np.testing.assert_array_equal(b.flipped, b.y != b.y_obs)
    assert set(np.unique(b.y)) <= {-1.0, 1.0}
    assert float(jnp.linalg.norm(b.mu)) == pytest.approx(3.0, rel=1e-6)


@pytest.mark.parametrize("signal", ["e1", "random"])
def test_orthogonal_noise_is_orthogonal_to_mu(signal):
    cfg = CFG.replace(signal=signal, dtype="float64")
    b = nj.sample(jax.random.key(1), cfg, nj.HParams())
    np.testing.assert_allclose(b.x[:, 1] @ b.mu, 0.0, atol=1e-10)


def test_isotropic_noise_has_the_right_variance():
    cfg = CFG.replace(n=400, d=200, noise="isotropic")
    b = nj.sample(jax.random.key(2), cfg, nj.HParams(sigma_p=2.0))
    assert float(jnp.var(b.x[:, 1])) == pytest.approx(4.0, rel=0.03)
    assert abs(float(jnp.mean(b.x[:, 1, 0] * b.y))) < 0.3  # noise along mu is not aligned with y


def test_bernoulli_flip_rates_match_tau_statistically():
    cfg = CFG.replace(n=4000, d=2)
    hp = nj.HParams(tau_plus=0.1, tau_minus=0.3)
    b = nj.sample(jax.random.key(3), cfg, hp)
    for cls, tau in ((1.0, 0.1), (-1.0, 0.3)):
        sel = np.asarray(b.y == cls)
        k, n = int(np.sum(np.asarray(b.flipped)[sel])), int(sel.sum())
        assert stats.binomtest(k, n, tau).pvalue > 1e-3
    rates = nj.realized_rates(b)
    assert float(rates["tau_plus_realized"]) == pytest.approx(0.1, abs=0.03)


def test_flip_rates_count_active_samples_per_class():
    """The one realized-rate function of the synthetic and the real-image runs."""
    flipped = np.array([True, False, True, True, False, True])
    plus = np.array([True, True, False, False, True, False])
    mask = np.array([True, True, True, True, False, False])  # the last two are padding
    rates = nj.synthetic.data.flip_rates(flipped, plus, mask, jnp.float32)
    assert float(rates["tau_plus_realized"]) == 0.5  # 1 of the 2 active plus samples
    assert float(rates["tau_minus_realized"]) == 1.0
    assert float(rates["flip_rate_realized"]) == 0.75
    assert all(v.dtype == jnp.float32 for v in rates.values())
    empty = nj.synthetic.data.flip_rates(flipped, np.zeros(6, bool), mask, jnp.float32)
    assert np.isnan(float(empty["tau_plus_realized"]))


def test_exact_flip_counts_are_exact():
    cfg = CFG.replace(n=101, flip="exact")
    hp = nj.HParams(tau_plus=0.2, tau_minus=0.35)
    b = nj.sample(jax.random.key(4), cfg, hp)
    for cls, tau in ((1.0, 0.2), (-1.0, 0.35)):
        sel = np.asarray(b.y == cls)
        assert int(np.asarray(b.flipped)[sel].sum()) == round(tau * sel.sum())


@pytest.mark.parametrize("n, tau", [(200, 0.3), (101, 0.2), (50, 0.1), (70, 0.45)])
def test_exact_total_flips_int_tau_n_over_the_whole_set(n, tau):
    """The authors' rule: int(tau n) indices over the whole training set, not per class."""
    cfg = CFG.replace(n=n, flip="exact_total")
    per_class_counts = set()
    for seed in range(6):
        b = nj.sample(jax.random.key(seed), cfg, nj.HParams(tau_plus=tau, tau_minus=tau))
        flipped, y = np.asarray(b.flipped), np.asarray(b.y)
        assert int(flipped.sum()) == int(tau * n)
        per_class_counts.add(int(flipped[y > 0].sum()))
    assert len(per_class_counts) > 1  # unlike "exact", the split between classes varies


def test_same_key_same_data_and_train_test_share_mu():
    cfg = CFG.replace(signal="random")
    a = nj.sample(jax.random.key(5), cfg, nj.HParams())
    b = nj.sample(jax.random.key(5), cfg, nj.HParams())
    t = nj.sample(jax.random.key(5), cfg, nj.HParams(), split="test")
    jax.tree.map(np.testing.assert_array_equal, a, b)
    np.testing.assert_array_equal(a.mu, t.mu)
    assert t.x.shape[0] == cfg.n_test and not np.allclose(a.x[:32, 1], t.x[:, 1])


def test_a_sample_does_not_depend_on_n():
    small = nj.sample(jax.random.key(6), CFG.replace(n=10), nj.HParams())
    large = nj.sample(jax.random.key(6), CFG.replace(n=50), nj.HParams())
    np.testing.assert_array_equal(small.x, large.x[:10])
    np.testing.assert_array_equal(small.y, large.y[:10])


@pytest.mark.parametrize("flip", ["bernoulli", "exact", "exact_total"])
@pytest.mark.parametrize("signal", ["e1", "random"])
def test_padded_sample_embeds_the_unpadded_one(flip, signal):
    small_cfg = CFG.replace(n=20, d=30, flip=flip, signal=signal, dtype="float64")
    big_cfg = small_cfg.replace(n=33, d=47)
    hp = nj.HParams(tau_plus=0.3, tau_minus=0.1)
    small = nj.sample(jax.random.key(7), small_cfg, hp)
    big = nj.sample(
        jax.random.key(7), big_cfg, hp, sizes=nj.Sizes(n=jnp.int32(20), d=jnp.int32(30))
    )
    np.testing.assert_allclose(big.x[:20, :, :30], small.x, rtol=1e-14, atol=1e-15)
    np.testing.assert_array_equal(big.x[20:], 0.0)
    np.testing.assert_array_equal(big.x[:, :, 30:], 0.0)
    np.testing.assert_array_equal(big.flipped[:20], small.flipped)
    assert not np.any(np.asarray(big.flipped[20:])) and not np.any(np.asarray(big.mask[20:]))


def test_sampler_is_vmappable_over_keys_and_hparams():
    keys = jax.vmap(jax.random.key)(jnp.arange(4))
    taus = jnp.array([0.0, 0.1, 0.2, 0.3], jnp.float32)
    batches = jax.vmap(lambda k, t: nj.sample(k, CFG, nj.HParams(tau_plus=t)))(keys, taus)
    assert batches.x.shape == (4, 64, 2, 40)
    assert not np.any(np.asarray(batches.flipped[0] & (batches.y[0] > 0)))
