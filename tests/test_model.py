"""The two-layer CNN: symmetry, activations and where gradients live."""

import jax
import numpy as np
import pytest

import noisyjax as nj

CFG = nj.Config(n=12, d=25, m=4, steps=10, log_every=5, n_test=8, dtype="float64")


def data_and_params(cfg=CFG, seed=0):
    k_data, k_init = jax.random.split(jax.random.key(seed))
    hp = nj.HParams(sigma_0=0.3)
    return nj.sample(k_data, cfg, hp), nj.init_params(k_init, cfg, hp)


@pytest.mark.parametrize("activation", ["relu", "relu_q", "leaky_relu"])
def test_swapping_filter_groups_negates_f(activation):
    cfg = CFG.replace(activation=activation)
    batch, params = data_and_params(cfg)
    swapped = {"w": params["w"][::-1]}
    np.testing.assert_allclose(
        nj.apply(swapped, batch.x, cfg), -nj.apply(params, batch.x, cfg), rtol=1e-12, atol=1e-14
    )


def test_apply_matches_the_formula_by_hand():
    batch, params = data_and_params()
    w = np.asarray(params["w"])
    x = np.asarray(batch.x)

    def relu(z):
        return np.maximum(z, 0.0)

    f = np.array(
        [
            sum(
                relu(w[0, r] @ x[i, p]) - relu(w[1, r] @ x[i, p])
                for r in range(4)
                for p in range(2)
            )
            / 4
            for i in range(12)
        ]
    )
    np.testing.assert_allclose(nj.apply(params, batch.x, CFG), f, rtol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "relu_q", "leaky_relu"])
def test_activation_derivative_is_zero_at_zero_and_exact_elsewhere(activation):
    cfg = CFG.replace(activation=activation, q=3.0, leaky_slope=0.2)
    act = nj.activation(cfg)
    assert float(jax.grad(act)(0.0)) == 0.0
    for z in (-1.3, 0.7, 2.0):
        numeric = (act(z + 1e-6) - act(z - 1e-6)) / 2e-6
        assert float(jax.grad(act)(z)) == pytest.approx(float(numeric), rel=1e-6)


@pytest.mark.parametrize("noise", ["orthogonal", "isotropic"])
def test_gradient_of_one_sample_lies_in_span_of_mu_and_its_noise(noise):
    cfg = CFG.replace(noise=noise)
    batch, params = data_and_params(cfg, seed=3)
    i = 5

    def loss(p):
        f = nj.apply(p, batch.x[i : i + 1], cfg)[0]
        return jax.nn.softplus(-batch.y_obs[i] * f)

    g_JMD = np.asarray(jax.grad(loss)(params)["w"])
    basis = np.stack([np.asarray(batch.mu), np.asarray(batch.x[i, 1])])  # (2, D)
    q, _ = np.linalg.qr(basis.T)
    residual = g_JMD - (g_JMD @ q) @ q.T
    assert np.abs(g_JMD).max() > 1e-6
    np.testing.assert_allclose(residual, 0.0, atol=1e-13)
