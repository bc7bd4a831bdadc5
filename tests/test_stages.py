"""Stage transitions found inside the compiled run, their snapshots, and the Orbax checkpoints."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noisyjax as nj
from noisyjax.synthetic.checkpoints import load_run_data, load_stage
from noisyjax.synthetic.stages import NEVER

# Two stages within 120 steps (n SNR^2 = 60 * 36 / 400 = 5.4 with tau = 0.15), logged every step
# so that the in-run detection can be checked against the trajectories.
CFG = nj.Config(n=60, d=400, m=6, steps=120, log_every=1, n_test=80, dtype="float64")
HP = nj.HParams(eta=0.2, tau_plus=0.15, tau_minus=0.15, mu_norm=6.0, sigma_0=0.001)


def train(cfg=CFG, hp=HP, seeds=4):
    keys = jax.vmap(jax.random.key)(jnp.arange(seeds))
    return jax.jit(jax.vmap(nj.make_train(cfg), in_axes=(0, None)))(keys, hp)


def first(condition):
    hits = np.flatnonzero(condition)
    return int(hits[0]) if hits.size else NEVER


@pytest.fixture(scope="module")
def two_stage():
    return train()


def test_transitions_match_the_per_step_trajectories(two_stage):
    _, m = two_stage
    for s in range(4):
        step = np.asarray(m["step"][s])
        t1 = first(np.asarray(m["train_acc_clean"][s]) == 1.0)
        t2 = first(np.asarray(m["train_acc"][s]) == 1.0)
        err = np.asarray(m["test_err"][s])
        cross = first(np.asarray(m["grad_noise_norm"][s]) > np.asarray(m["grad_signal_norm"][s]))
        assert int(m["t1"][s]) == step[t1]
        assert int(m["t2"][s]) == (step[t2] if t2 != NEVER else NEVER)
        assert int(m["t_best"][s]) == step[int(np.argmin(err))]
        assert float(m["best_test_err"][s]) == err.min()
        assert int(m["t_cross"][s]) == (step[cross] if cross != NEVER else NEVER)
        np.testing.assert_allclose(m["t1_train_acc_noisy"][s], m["train_acc_noisy"][s][t1])
        np.testing.assert_allclose(
            m["t1_frac_noisy_above_log2"][s], m["frac_noisy_above_log2"][s][t1]
        )


def test_two_stages_have_t1_before_t2(two_stage):
    _, m = two_stage
    t1, t2 = np.asarray(m["t1"]), np.asarray(m["t2"])
    assert np.all(t1 >= 0) and np.all(t2 > t1), (t1, t2)
    assert np.all(np.asarray(m["stage_one_exists"]))
    assert not np.any(np.asarray(m["markers_vacuous"]))  # both clean and flipped samples


def test_without_label_noise_there_are_no_separate_stages():
    _, m = train(hp=HP.replace(tau_plus=0.0, tau_minus=0.0))
    np.testing.assert_array_equal(m["t1"], m["t2"])
    assert not np.any(np.asarray(m["stage_one_exists"]))
    assert np.all(np.isnan(np.asarray(m["t1_train_acc_noisy"])))


@pytest.mark.parametrize("tau", [0.45, 0.0])
def test_a_run_without_clean_or_without_flipped_samples_has_vacuous_markers(tau):
    """n = 1: the one sample is either flipped (no clean sample, so t1 holds vacuously at step
    0 and t_stage1 may follow) or clean (no flipped sample). Either way there is no Stage-I
    window, and the markers are flagged vacuous."""
    cfg = nj.Config(n=1, d=20, m=2, steps=10, log_every=5, n_test=8, log_samples=True)
    hp = nj.HParams(eta=0.5, tau_plus=tau, tau_minus=tau, mu_norm=2.0, sigma_0=0.01)
    _, m = train(cfg, hp, seeds=12)
    m = jax.tree.map(np.asarray, m)
    flipped = m["sample_flipped"].reshape(12)
    assert np.all(m["markers_vacuous"])
    assert not np.any(m["stage_one_exists"]) and np.all(m["stage_one_length"] == 0)
    if tau > 0:  # the case that looked like a Stage I: a run with only a flipped sample
        assert np.any(flipped) and not np.all(flipped)
        assert np.any(flipped & (m["t_stage1"] != NEVER)), m["t_stage1"]
        assert np.all(m["t1"][flipped] == 0)
    else:
        assert not np.any(flipped) and np.all(m["t_stage1"] == NEVER)


def test_snapshots_hold_the_state_at_each_transition(two_stage):
    state, m = two_stage
    snaps = state.stages.snapshots
    for name in ("t1", "t2", "t_best", "t_cross"):
        np.testing.assert_array_equal(snaps[name].step, m[name])
    # The t1 snapshot fits every clean sample and gives the recorded flipped accuracy.
    k_data = jax.random.split(jax.random.key(0), 3)[0]
    batch = nj.sample(k_data, CFG, HP)
    z = batch.y_obs * nj.apply({"w": snaps["t1"].w[0]}, batch.x, CFG)
    assert np.all(np.asarray(z)[~np.asarray(batch.flipped)] > 0)
    assert float(np.mean(np.asarray(z)[np.asarray(batch.flipped)] > 0)) == float(
        m["t1_train_acc_noisy"][0]
    )


def test_sparse_test_evaluation_only_sees_evaluated_steps():
    """Evaluated: every eval_every steps and every logged step (here multiples of 5 and 10)."""
    _, dense = train(seeds=1)
    _, sparse = train(CFG.replace(eval_every=5, log_every=10), seeds=1)
    err = np.asarray(dense["test_err"][0])
    assert int(sparse["t_best"][0]) % 5 == 0 or int(sparse["t_best"][0]) == CFG.steps
    assert float(sparse["best_test_err"][0]) == err[::5].min() or float(
        sparse["best_test_err"][0]
    ) == min(err[::5].min(), err[-1])
    np.testing.assert_array_equal(sparse["t1"], dense["t1"])


def test_snapshot_stages_option_keeps_only_the_requested_ones():
    state, _ = train(CFG.replace(snapshot_stages=("t1",), steps=10), seeds=1)
    assert set(state.stages.snapshots) == {"t1"}
    with pytest.raises(nj.ConfigError, match="snapshot_stages"):
        nj.Config(snapshot_stages=("t3",))


def test_checkpoints_reload_to_the_recorded_numbers(tmp_path):
    from sweeps import grid

    out = tmp_path / "sweep"
    args = [
        "--preset",
        "tiny",
        "--no-progress",
        "--out",
        str(out),
        "--set",
        "log_every=1",
        "--set",
        "steps=40",
        "--heatmap",
        "t2",
        "--matmul-precision",
        "highest",
    ]
    try:
        assert grid.main(args) == 0
    finally:
        jax.config.update("jax_default_matmul_precision", None)  # the CLI sets it globally
    assert (out / "heatmap_t2.png").stat().st_size > 0
    config = json.loads((out / "config.json").read_text())
    assert config["environment"]["matmul_precision"] == "highest"
    assert "heatmap_t2.png" in config["figures"]
    ds = nj.load_sweep(out)
    for tau, seed in ((0.1, 0), (0.3, 1)):
        cell = {"tau": tau, "n_snr2": 8.0, "seed": seed}
        train_set, test_set, cfg, _ = load_run_data(out, **cell)
        t1 = load_stage(out, "t1", **cell)
        z = np.asarray(train_set.y_obs * nj.apply({"w": t1.w}, train_set.x, cfg))
        flipped = np.asarray(train_set.flipped)
        assert np.all(z[~flipped] > 0)
        assert np.mean(z[flipped] > 0) == float(ds["t1_train_acc_noisy"].sel(cell))
        best = load_stage(out, "t_best", **cell)
        f = np.asarray(nj.apply({"w": best.w}, test_set.x, cfg))
        assert np.mean(np.asarray(test_set.y) * f <= 0) == float(ds["best_test_err"].sel(cell))
        assert int(best.step) == int(ds["t_best"].sel(cell))
    every = load_stage(out, "final")
    assert every.w.shape[:3] == (2, 2, 2) and np.all(every.step == 40)
    with pytest.raises(nj.ConfigError, match="stage='t3'"):
        load_stage(out, "t3")
