"""An independent float64 NumPy oracle for full-batch GD, checked against `noisyjax.fit`.

The oracle below re-derives docs/science.md sections 2-4 from scratch and imports nothing from
noisyjax: the two-layer CNN f(W, x) = (1/m) sum_r [act(<w_{+1,r}, x1>) + act(<w_{+1,r}, x2>)]
- (same for j = -1) (filter group 0 is j = +1), the mean logistic loss, its hand-written
gradient (act'(0) = 0), the step W <- W - eta grad, the exact recursions for gamma and
rho = rho_bar + rho_under, and every metric the library logs. Only data and initial weights
come from the library (converted to NumPy). Each logged trajectory and the final filters and
coefficients must agree with `jax.jit(nj.fit)` in float64 to 1e-9 relative; W(T) - W(0) must
equal `nj.rebuild_displacement(gamma, rho)`. The signal and noise parts of the gradient step
are built here as explicit d-dimensional vectors, not through the library's Gram matrix.
A zero initialisation (f = 0 for every sample) pins the tie conventions: y f <= 0 is an error,
AUROC ties count 1/2.
"""

import functools
import math

import jax
import numpy as np
import pytest

import noisyjax as nj

N, D, M, N_TEST, STEPS, LOG_EVERY = 40, 300, 5, 50, 200, 10
# n SNR^2 (1 - 2 tau) ~ 4: clean samples are fitted by step 10 while every flipped sample still has
# loss > log 2 (Stage I); the flipped samples are memorized between steps 10 and 60 (Stage II).
HP = dict(eta=0.05, tau_plus=0.2, tau_minus=0.2, mu_norm=7.0, sigma_p=1.0, sigma_0=0.01)
SEED = 4  # 8 of the 40 training labels are flipped
# ReLU^3 (q = 3) needs a larger init to move at all; it then fits the flipped samples at once.
CASES = {
    "relu-orthogonal": dict(),
    "relu-isotropic": dict(noise="isotropic"),
    "relu_q-orthogonal": dict(activation="relu_q", sigma_0=0.1),
    "relu_q-isotropic": dict(activation="relu_q", sigma_0=0.1, noise="isotropic"),
}
RTOL, ATOL = 1e-9, 1e-12
SIGNS = np.array([1.0, -1.0])  # j of filter group 0 and 1


def act_pair(name, q):
    if name == "relu":
        return (lambda z: np.maximum(z, 0.0)), (lambda z: (z > 0).astype(float))
    return (lambda z: np.maximum(z, 0.0) ** q), (lambda z: q * np.maximum(z, 0.0) ** (q - 1))


def softplus(t):
    return np.logaddexp(0.0, t)


def network(w, x, act):
    """f(W, x) for every sample and the pre-activations <w_{j,r}, x_p> of shape (n, 2, 2, m)."""
    pre = np.einsum("jmd,npd->npjm", w, x)
    return np.einsum("npjm,j->n", act(pre), SIGNS) / w.shape[1], pre


def auroc(score, pos, neg):
    """Mann-Whitney AUROC by brute force: P(score_pos > score_neg), ties 1/2."""
    if not pos.any() or not neg.any():
        return math.nan
    wins = [1.0 if a > b else 0.5 if a == b else 0.0 for a in score[pos] for b in score[neg]]
    return float(np.mean(wins))


def subset_mean(v, sel):
    return float(np.mean(v[sel])) if sel.any() else math.nan


def subset_max(v, sel):
    return float(np.max(v[sel])) if sel.any() else math.nan


def oracle_fit(w0, data, test, eta, act_name="relu", q=3.0):
    """Train by full-batch GD; returns final (w, gamma, rho_bar, rho_under) and the metrics."""
    act, dact = act_pair(act_name, q)
    x, y, y_obs, flipped, mu = data
    n, m = x.shape[0], w0.shape[1]
    xi = x[:, 1]
    mu2, xi2 = mu @ mu, np.sum(xi**2, axis=1)
    clean = ~flipped

    def gd_step(w):
        """Gradient of the mean logistic loss by hand, and the exact coefficient increments."""
        f, pre = network(w, x, act)
        lp = -np.exp(-softplus(y_obs * f))  # l'(z_i) = -1 / (1 + e^{z_i}), z_i = y_obs_i f_i
        coef = lp * y_obs / n  # d L / d f_i
        grad = np.einsum("n,j,npjm,npd->jmd", coef, SIGNS, dact(pre), x) / m
        dgamma = -eta / (n * m) * np.einsum("n,njm->jm", lp * y_obs * y * mu2, dact(pre[:, 0]))
        drho = -eta / (n * m) * np.einsum("n,njm,j->jmn", lp * y_obs * xi2, dact(pre[:, 1]), SIGNS)
        return -eta * grad, dgamma, drho

    def metrics(w, gamma, rho_bar, rho_under):
        f, _ = network(w, x, act)
        z = y_obs * f
        loss = softplus(-z)
        correct = (z > 0).astype(float)
        own = np.where(y_obs > 0, rho_bar[0].max(axis=0), rho_bar[1].max(axis=0))
        f_test, _ = network(w, test[0], act)
        _, dgamma, drho = gd_step(w)
        signal_part = np.einsum("j,jm,d->jmd", SIGNS, dgamma, mu / mu2)
        noise_part = np.einsum("jmn,nd->jmd", drho, xi / xi2[:, None])
        return {
            "train_loss": loss.mean(),
            "train_loss_clean": subset_mean(loss, clean),
            "train_loss_noisy": subset_mean(loss, flipped),
            "train_acc": correct.mean(),
            "train_acc_clean": subset_mean(correct, clean),
            "train_acc_noisy": subset_mean(correct, flipped),
            "train_acc_noisy_true": subset_mean((y * f > 0).astype(float), flipped),
            "test_err": np.mean(test[1] * f_test <= 0),
            "test_err_noisy_labels": np.mean(test[2] * f_test <= 0),
            "gamma_max": gamma.max(),
            "rho_bar_clean": subset_mean(own, clean),
            "rho_bar_noisy": subset_mean(own, flipped),
            "rho_bar_clean_max": subset_max(own, clean),
            "rho_bar_noisy_max": subset_max(own, flipped),
            "rho_under_min": rho_under.min(),
            "frac_clean_below_log2": subset_mean((loss < math.log(2)).astype(float), clean),
            "frac_noisy_above_log2": subset_mean((loss > math.log(2)).astype(float), flipped),
            "loss_auroc": auroc(loss, flipped, clean),
            "grad_signal_norm": np.sqrt(np.sum(signal_part**2)),
            "grad_noise_norm": np.sqrt(np.sum(noise_part**2)),
        }

    w, gamma = w0.copy(), np.zeros((2, m))
    rho_bar, rho_under = np.zeros((2, m, n)), np.zeros((2, m, n))
    logs = []
    for t in range(STEPS + 1):
        if t % LOG_EVERY == 0:
            logs.append({"step": t, **metrics(w, gamma, rho_bar, rho_under)})
        if t == STEPS:
            break
        dw, dgamma, drho = gd_step(w)
        w, gamma = w + dw, gamma + dgamma
        rho_bar, rho_under = rho_bar + np.maximum(drho, 0.0), rho_under + np.minimum(drho, 0.0)
    trajectories = {k: np.array([log[k] for log in logs], dtype=float) for k in logs[0]}
    return (w, gamma, rho_bar, rho_under), trajectories


@functools.cache
def library_run(case="relu-orthogonal", **extra):
    """Library data, weights and `jit(fit)` in float64; the oracle trained from the same inputs."""
    overrides = {**CASES[case], **extra}
    cfg_fields = {k: overrides.pop(k) for k in ("noise", "activation") if k in overrides}
    hp = nj.HParams(**{**HP, **overrides})
    sizes = dict(n=N, d=D, m=M, n_test=N_TEST, steps=STEPS, log_every=LOG_EVERY)
    cfg = nj.Config(**sizes, q=3.0, dtype="float64", **cfg_fields)
    k_data, k_init, _ = jax.random.split(jax.random.key(SEED), 3)
    train = nj.sample(k_data, cfg, hp, split="train")
    test = nj.sample(k_data, cfg, hp, split="test")
    params = nj.init_params(k_init, cfg, hp)
    state, logged = jax.jit(lambda p, a, b: nj.fit(p, a, b, cfg, hp))(params, train, test)
    tr, te, w0 = jax.tree.map(np.asarray, (train, test, params["w"]))
    data = (tr.x, tr.y, tr.y_obs, tr.flipped, tr.mu)
    final, oracle_logs = oracle_fit(w0, data, (te.x, te.y, te.y_obs), hp.eta, cfg.activation, cfg.q)
    assert set(nj.METRIC_NAMES) <= set(logged)  # plus per-run stage scalars
    logs = {name: np.asarray(logged[name]) for name in nj.METRIC_NAMES}
    lib = {"cfg": cfg, "train": train, "state": state, "logs": logs}
    ora = {"w0": w0, "data": data, "test": (te.x, te.y, te.y_obs), "final": final}
    return lib, {**ora, "logs": oracle_logs}


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("case", CASES)
def test_fit_matches_numpy_oracle(case):
    lib, ora = library_run(case)
    assert set(ora["logs"]) == set(nj.METRIC_NAMES) == set(lib["logs"])
    np.testing.assert_array_equal(lib["logs"]["step"], np.arange(0, STEPS + 1, LOG_EVERY))
    for name in nj.METRIC_NAMES:
        assert lib["logs"][name].shape == (STEPS // LOG_EVERY + 1,), name
        np.testing.assert_allclose(
            lib["logs"][name], ora["logs"][name], rtol=RTOL, atol=ATOL, err_msg=name
        )
    state = lib["state"]
    w, gamma, rho_bar, rho_under = ora["final"]
    close(state.params["w"], w)
    close(state.gamma, gamma)
    close(state.rho_bar, rho_bar)
    close(state.rho_under, rho_under)


@pytest.mark.parametrize("case", ["relu-orthogonal", "relu_q-isotropic"])
def test_displacement_rebuilt_from_coefficients(case):
    lib, ora = library_run(case)
    state, train = lib["state"], lib["train"]
    rebuilt = nj.rebuild_displacement(state.gamma, state.rho, train, nj.geometry(train, lib["cfg"]))
    displacement = np.asarray(state.params["w"]) - ora["w0"]
    close(rebuilt, displacement)
    # The oracle's own coefficients rebuild its own displacement (pure NumPy).
    w, gamma, rho_bar, rho_under = ora["final"]
    x, _, _, _, mu = ora["data"]
    xi = x[:, 1]
    own = np.einsum("j,jm,d->jmd", SIGNS, gamma, mu / (mu @ mu)) + np.einsum(
        "jmn,nd->jmd", rho_bar + rho_under, xi / np.sum(xi**2, axis=1)[:, None]
    )
    close(own, w - ora["w0"])


def test_no_label_noise_gives_nan_flipped_metrics():
    lib, ora = library_run("relu-orthogonal", tau_plus=0.0, tau_minus=0.0)
    assert not np.asarray(lib["train"].flipped).any()
    for name in (
        "train_loss_noisy",
        "train_acc_noisy",
        "train_acc_noisy_true",
        "rho_bar_noisy",
        "rho_bar_noisy_max",
        "frac_noisy_above_log2",
        "loss_auroc",
    ):
        assert np.isnan(lib["logs"][name]).all() and np.isnan(ora["logs"][name]).all(), name
    for name in nj.METRIC_NAMES:
        np.testing.assert_allclose(
            lib["logs"][name], ora["logs"][name], rtol=RTOL, atol=ATOL, err_msg=name
        )
    close(lib["state"].params["w"], ora["final"][0])


def test_oracle_shows_two_stages_and_is_sensitive():
    """The comparison is not vacuous: the dynamics move, and a 1e-6 change in eta is detected."""
    lib, ora = library_run("relu-orthogonal")
    logs = ora["logs"]
    t1 = int(np.argmax(logs["train_acc_clean"] == 1.0))  # first log with every clean sample fit
    assert 0 < t1 and logs["frac_noisy_above_log2"][t1] >= 0.9  # Stage I
    assert logs["train_acc_noisy"][0] < 1.0 and logs["train_acc_noisy"][t1] <= 0.25
    assert logs["train_acc_noisy"][-1] == 1.0  # Stage II: flipped samples memorized
    assert logs["gamma_max"][-1] > logs["gamma_max"][t1] > 0.0
    assert logs["rho_bar_noisy"][-1] > logs["gamma_max"][-1]
    assert np.all(np.diff(logs["train_loss"]) < 0)
    (w_perturbed, *_), _ = oracle_fit(ora["w0"], ora["data"], ora["test"], HP["eta"] * (1 + 1e-6))
    assert not np.allclose(lib["state"].params["w"], w_perturbed, rtol=RTOL, atol=ATOL)


TIED_METRICS = [name for name in nj.METRIC_NAMES if name != "train_acc_noisy_true"]


def test_tie_conventions_at_zero_init():
    """W(0) = 0 gives f = 0 everywhere (and no ReLU gradient): every loss ties at log 2."""
    lib, ora = library_run("relu-orthogonal", sigma_0=0.0)
    assert np.all(ora["logs"]["test_err"] == 1.0) and np.all(ora["logs"]["loss_auroc"] == 0.5)
    for name in TIED_METRICS:
        np.testing.assert_allclose(
            lib["logs"][name], ora["logs"][name], rtol=RTOL, atol=ATOL, err_msg=name
        )


def test_flipped_true_label_accuracy_at_zero_output():
    lib, ora = library_run("relu-orthogonal", sigma_0=0.0)
    close(lib["logs"]["train_acc_noisy_true"], ora["logs"]["train_acc_noisy_true"])
