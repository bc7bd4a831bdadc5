"""Compatibility options for Kou et al. (2023) (docs/science.md section 7), each against a hand
computation in NumPy: the bias and its gradient, PyTorch's default initialization, Kou's output
scaling with the 2-logit cross-entropy, and test labels flipped like the training labels."""

import jax
import numpy as np
import pytest
from scipy import stats

import noisyjax as nj
from noisyjax.synthetic.engines import forward, to_gram

KOU = dict(bias=True, init="torch", output_scale="kou", noise="isotropic", dtype="float64")


def relu(z):
    return np.maximum(z, 0.0)


def kou_logits(w_JMD, b_JM, x_NPD):
    """Kou et al.'s network: Conv1d(1, 2m, kernel d, stride d) with bias on the 2 patches, ReLU,
    then for each class the sum over its m filters of the mean over the two patches."""
    pre_NPJM = np.einsum("jmd,npd->npjm", w_JMD, x_NPD) + b_JM[None, None]
    return relu(pre_NPJM).mean(axis=1).sum(axis=-1)  # (N, J): class +1 is filter group 0


def test_kou_output_and_loss_match_a_hand_computation():
    cfg = nj.Config(n=12, d=30, m=4, **KOU)
    key = jax.random.key(0)
    params = nj.init_params(key, cfg)
    batch = nj.sample(key, cfg, nj.HParams(mu_norm=2.0))
    w, b, x = (np.asarray(v) for v in (params["w"], params["b"], batch.x))
    logits_NJ = kou_logits(w, b, x)
    f = np.asarray(nj.apply(params, batch.x, cfg))
    np.testing.assert_allclose(f, logits_NJ[:, 0] - logits_NJ[:, 1], rtol=1e-12)
    # 2-logit cross-entropy with target class y_obs equals the logistic loss of y_obs f.
    target = (np.asarray(batch.y_obs) < 0).astype(int)  # +1 -> logit 0
    ce = -np.log(np.exp(logits_NJ[np.arange(12), target]) / np.exp(logits_NJ).sum(axis=1))
    np.testing.assert_allclose(np.log1p(np.exp(-np.asarray(batch.y_obs) * f)), ce, rtol=1e-12)
    # The paper's scaling is 2/m times Kou's.
    paper = np.asarray(nj.apply(params, batch.x, cfg.replace(output_scale="paper")))
    np.testing.assert_allclose(paper, f * 2 / cfg.m, rtol=1e-12)


@pytest.mark.parametrize("engine", ["dense", "gram"])
def test_bias_gradient_matches_the_hand_derivative(engine):
    """dL/db_{j,r} = sum_i (1/n) l'(z_i) y_i j (1/2) sum_p 1[<w_{j,r}, x_{i,p}> + b_{j,r} > 0]."""
    cfg = nj.Config(n=16, d=40, m=3, engine=engine, **KOU)
    key = jax.random.key(1)
    params = nj.init_params(key, cfg)
    batch = nj.sample(key, cfg, nj.HParams(mu_norm=1.0))
    work_params, work = (params, batch) if engine == "dense" else to_gram(params, batch)[:2]
    y = np.asarray(batch.y_obs)
    f, backward = forward(work_params, work, cfg)
    # d/df of the mean logistic loss of y_obs f.
    grads, _ = backward(jax.grad(lambda f: jax.numpy.mean(jax.nn.softplus(-batch.y_obs * f)))(f))
    w, b, x = (np.asarray(v) for v in (params["w"], params["b"], batch.x))
    pre_np = np.einsum("jmd,npd->npjm", w, x) + b[None, None]
    logits = relu(pre_np).mean(axis=1).sum(axis=-1)
    z = y * (logits[:, 0] - logits[:, 1])
    lprime = -1.0 / (1.0 + np.exp(z))
    signs = np.array([1.0, -1.0])
    hand = np.einsum("n,j,npjm->jm", lprime * y / 16, signs, (pre_np > 0) * 0.5)
    np.testing.assert_allclose(np.asarray(grads["b"]), hand, rtol=1e-10, atol=1e-14)
    # One GD step moves the bias by -eta times it.
    state, _ = nj.fit(params, batch, batch, cfg.replace(steps=1, log_every=1), nj.HParams(eta=0.1))
    np.testing.assert_allclose(np.asarray(state.params["b"]), b - 0.1 * hand, rtol=1e-10)


def test_torch_init_is_uniform_within_one_over_sqrt_fan_in():
    d = 500
    cfg = nj.Config(n=4, d=d, m=50, **KOU)
    params = nj.init_params(jax.random.key(2), cfg)
    bound = 1 / np.sqrt(d)
    w, b = np.asarray(params["w"]).ravel(), np.asarray(params["b"]).ravel()
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(w).max() > 0.99 * bound  # fills the interval
    assert stats.kstest(w, stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3
    assert stats.kstest(b, stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3
    # The bound follows the active d of a padded run; padding stays zero.
    padded = nj.init_params(jax.random.key(2), cfg, sizes=nj.Sizes(n=4, d=100))
    pw = np.asarray(padded["w"])
    assert np.all(pw[..., 100:] == 0) and np.abs(pw).max() <= 1 / np.sqrt(100)
    # Without the option: Gaussian filters, no bias.
    gauss = nj.init_params(jax.random.key(2), nj.Config(n=4, d=d, m=50), nj.HParams(sigma_0=0.3))
    assert set(gauss) == {"w"} and abs(np.asarray(gauss["w"]).std() / 0.3 - 1) < 0.02


def test_test_labels_are_flipped_like_training_labels():
    cfg = nj.Config(n=50, d=40, m=3, n_test=4000, dtype="float64")
    hp = nj.HParams(tau_plus=0.3, tau_minus=0.1, mu_norm=1.0)
    test = nj.sample(jax.random.key(3), cfg, hp, split="test")
    y, y_obs = np.asarray(test.y), np.asarray(test.y_obs)
    np.testing.assert_array_equal(np.asarray(test.flipped), y != y_obs)
    for cls, tau in ((1.0, 0.3), (-1.0, 0.1)):
        rate = np.mean(y_obs[y == cls] != cls)
        assert abs(rate - tau) < 4 * np.sqrt(tau * (1 - tau) / np.sum(y == cls))
    params = nj.init_params(jax.random.key(4), cfg, nj.HParams(sigma_0=1.0))
    f = np.asarray(nj.apply(params, test.x, cfg))
    errs = nj.synthetic.metrics.test_errors(params, test, cfg)
    assert float(errs["test_err_noisy_labels"]) == np.mean(y_obs * f <= 0)
    assert float(errs["test_err"]) == np.mean(y * f <= 0)
