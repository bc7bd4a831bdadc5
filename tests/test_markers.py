"""Every stage marker against a step-by-step float64 NumPy loop, on the dense and gram engines.

The loop below re-derives each marker of docs/stages.md from the raw quantities of every step
(margins, losses, gamma and rho, the step's signal and noise parts as d-dimensional vectors, the
test errors), using only the oracle of tests/test_oracle.py (no noisyjax code), and must give the
same step and the same probe values as the markers found inside the compiled run. The setting
has a Stage-I window of several steps (n SNR^2 (1 - 2 tau) / 2 ~ 2) and memorizes every flipped
sample within the run, so each marker happens at a step that the definitions, not the run's
length, decide; tau = 0 and a 10-step run are the cases where markers never happen.
"""

import functools
import math

import jax
import numpy as np
import pytest
from test_oracle import SIGNS, act_pair, auroc, network, softplus

import noisyjax as nj
from noisyjax.synthetic.stages import NEVER, PROBES

N, D, M, N_TEST, STEPS, LOG_EVERY = 40, 300, 5, 60, 160, 10
HP = dict(eta=0.05, tau_plus=0.2, tau_minus=0.2, mu_norm=7.0, sigma_p=1.0, sigma_0=0.01)
SEED = 4
LOG2 = math.log(2.0)


def oracle_markers(w0, data, test, eta, steps, clean_level=0.3):
    """Markers and their probes from a plain GD loop (act = ReLU), checked at every step."""
    act, dact = act_pair("relu", 3.0)
    x, y, y_obs, flipped, mu = data
    x_test, y_test, y_obs_test = test
    n, m = x.shape[0], w0.shape[1]
    xi, mu2 = x[:, 1], mu @ mu
    xi2 = np.sum(xi**2, axis=1)
    clean = ~flipped
    own = (SIGNS[:, None] * y_obs[None]) > 0  # (J, N): j = y_obs_i
    w, gamma, rho = w0.copy(), np.zeros((2, m)), np.zeros((2, m, n))
    times, probes, best, t_best = {}, {}, None, None
    for t in range(steps + 1):
        f, pre = network(w, x, act)
        z = y_obs * f
        loss = softplus(-z)
        rho_bar = np.where(own[:, None], rho, 0.0)
        own_rho = np.where(y_obs > 0, rho_bar[0].max(axis=0), rho_bar[1].max(axis=0))
        f_test, _ = network(w, x_test, act)
        wrong = int(np.sum(y_test * f_test <= 0))
        above = np.mean(loss[flipped] > LOG2) if flipped.any() else math.nan
        values = {
            "train_acc_clean": np.mean(z[clean] > 0),
            "train_acc_noisy": np.mean(z[flipped] > 0) if flipped.any() else math.nan,
            "train_loss_clean": loss[clean].mean(),
            "train_loss_noisy": loss[flipped].mean() if flipped.any() else math.nan,
            "frac_noisy_above_log2": above,
            "frac_clean_below_log2": np.mean(loss[clean] < LOG2),
            "loss_auroc": auroc(loss, flipped, clean),
            "gamma_max": gamma.max(),
            "rho_bar_clean": own_rho[clean].mean(),
            "rho_bar_noisy": own_rho[flipped].mean() if flipped.any() else math.nan,
            "test_err": wrong / len(y_test),
            "test_err_noisy_labels": np.mean(y_obs_test * f_test <= 0),
        }
        # The GD step from W(t), and its coefficient increments (docs/science.md section 4).
        lp = -np.exp(-softplus(z))
        grad = np.einsum("n,j,npjm,npd->jmd", lp * y_obs / n, SIGNS, dact(pre), x) / m
        dgamma = -eta / (n * m) * np.einsum("n,njm->jm", lp * y_obs * y * mu2, dact(pre[:, 0]))
        drho = -eta / (n * m) * np.einsum("n,njm,j->jmn", lp * y_obs * xi2, dact(pre[:, 1]), SIGNS)
        signal = np.linalg.norm(np.einsum("j,jm,d->jmd", SIGNS, dgamma, mu / mu2))
        noise = np.linalg.norm(np.einsum("jmn,nd->jmd", drho, xi / xi2[:, None]))
        noise_f = np.linalg.norm(
            np.einsum("jmn,nd->jmd", drho[..., flipped], (xi / xi2[:, None])[flipped])
        )
        final = t == steps
        hit = {
            "t1": np.all(z[clean] > 0),
            "t_stage1": np.all(z[clean] > 0) and above >= 0.9,
            "t_memorize": "t_stage1" in times and above < 0.9,
            "t_clean": loss[clean].mean() < clean_level,
            "t_overtake": values["rho_bar_noisy"] > gamma.max(),
            "t_cross_flipped": not final and noise_f > signal,
            "t_half_flipped": ("t1" in times or np.all(z[clean] > 0))
            and values["train_acc_noisy"] >= 0.5,
            "t2": np.all(z > 0),
            "t_cross": not final and noise > signal,
        }
        for name, h in hit.items():
            if h and name not in times:
                times[name], probes[name] = t, dict(values)
        if best is None or wrong < best:
            best, t_best, probes["t_best"] = wrong, t, dict(values)
        if final:
            break
        w, gamma, rho = w - eta * grad, gamma + dgamma, rho + drho
    times["t_best"] = t_best
    return times, probes, best / len(y_test)


@functools.cache
def runs(engine, steps=STEPS, **hp_changes):
    """The library's markers (jit(fit), float64) and the oracle's, from the same data."""
    hp = nj.HParams(**{**HP, **hp_changes})
    cfg = nj.Config(
        n=N,
        d=D,
        m=M,
        n_test=N_TEST,
        steps=steps,
        log_every=LOG_EVERY if steps % LOG_EVERY == 0 else 1,
        dtype="float64",
        engine=engine,
    )
    k_data, k_init, _ = jax.random.split(jax.random.key(SEED), 3)
    train, test = (
        nj.sample(k_data, cfg, hp, split="train"),
        nj.sample(k_data, cfg, hp, split="test"),
    )
    params = nj.init_params(k_init, cfg, hp)
    _, out = jax.jit(lambda p, a, b: nj.fit(p, a, b, cfg, hp))(params, train, test)
    tr, te, w0 = jax.tree.map(np.asarray, (train, test, params["w"]))
    oracle = oracle_markers(
        w0, (tr.x, tr.y, tr.y_obs, tr.flipped, tr.mu), (te.x, te.y, te.y_obs), hp.eta, steps
    )
    return jax.tree.map(np.asarray, out), oracle


@pytest.mark.parametrize("engine", ["dense", "gram"])
def test_every_marker_matches_the_numpy_loop(engine):
    out, (times, probes, best) = runs(engine)
    for name in nj.TRANSITION_NAMES:
        expected = times.get(name, NEVER)
        assert int(out[name]) == expected, (name, int(out[name]), expected)
        if expected == NEVER:
            continue
        for key in PROBES:
            np.testing.assert_allclose(
                out[f"{name}_{key}"],
                probes[name][key],
                rtol=1e-9,
                atol=1e-12,
                err_msg=f"{name}_{key}",
            )
    assert float(out["best_test_err"]) == best
    # The setting is one where the markers say something: a Stage-I window of several steps,
    # closed by memorization inside the run, in the order the story tells.
    t = {name: int(out[name]) for name in nj.TRANSITION_NAMES}
    assert bool(out["stage_one_exists"]) and t["t_memorize"] - t["t_stage1"] >= 5, t
    assert int(out["stage_one_length"]) == t["t_memorize"] - t["t_stage1"]
    assert t["t1"] <= t["t_stage1"] < t["t_memorize"] <= t["t_half_flipped"] <= t["t2"], t
    assert t["t_cross"] < t["t_cross_flipped"], t  # all noise beats the signal before F's
    assert all(v != NEVER for v in t.values()), t


@pytest.mark.parametrize("engine", ["dense", "gram"])
def test_markers_that_never_happen_are_never(engine):
    out, (times, _, _) = runs(engine, tau_plus=0.0, tau_minus=0.0)
    flipped_markers = ("t_stage1", "t_memorize", "t_overtake", "t_cross_flipped", "t_half_flipped")
    for name in flipped_markers:
        assert int(out[name]) == NEVER and name not in times, name
        assert np.isnan(out[f"{name}_gamma_max"]), name
    assert not bool(out["stage_one_exists"]) and int(out["stage_one_length"]) == 0
    assert int(out["t1"]) == times["t1"] != NEVER
    short, (short_times, _, _) = runs(engine, steps=10)
    for name in ("t_memorize", "t_half_flipped", "t2", "t_clean"):  # too early for these
        assert int(short[name]) == NEVER and name not in short_times, name
    # A window still open at the end is counted to the final state: steps t_stage1 .. 10.
    assert int(short["t_stage1"]) == short_times["t_stage1"] != NEVER
    assert int(short["stage_one_length"]) == 10 + 1 - int(short["t_stage1"])
