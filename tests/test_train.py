"""The training loop: determinism, vmap, padding, empty subsets, decomposition, two stages."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noisyjax as nj
from noisyjax.synthetic import engines, stages
from noisyjax.synthetic import train as train_lib

SMALL = nj.Config(n=24, d=60, m=4, steps=40, log_every=10, n_test=30, dtype="float64")
HP = nj.HParams(eta=0.5, mu_norm=2.0, sigma_0=0.05)


def run(cfg, hp=HP, seed=0, sizes=None):
    return jax.jit(nj.make_train(cfg))(jax.random.key(seed), hp, sizes)


def assert_trees_close(a, b, rtol=1e-12, atol=1e-14):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol), a, b)


def test_metrics_have_every_name_and_one_entry_per_logged_step():
    _, metrics = run(SMALL)
    for name in nj.METRIC_NAMES:
        assert metrics[name].shape == (SMALL.n_logs,), name
    np.testing.assert_array_equal(metrics["step"], [0, 10, 20, 30, 40])
    assert metrics["tau_plus_realized"].shape == ()


def test_same_key_gives_identical_results():
    a, b = run(SMALL.replace(dtype="float32")), run(SMALL.replace(dtype="float32"))
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_vmap_over_8_keys_equals_8_single_runs():
    cfg = SMALL.replace(dtype="float32")
    train = nj.make_train(cfg)
    keys = jax.vmap(jax.random.key)(jnp.arange(8))
    _, batched = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, HP)
    single = jax.jit(train)
    for s in range(8):
        _, one = single(jax.random.key(s), HP)
        assert_trees_close(jax.tree.map(lambda v: v[s], batched), one, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {
            "optimizer": "sgd",
            "batch_size": 8,
            "label_noise_gd": True,
            "flip": "exact",
            "signal": "random",
            "noise": "isotropic",
        },
    ],
)
def test_padded_run_equals_unpadded_run(variant):
    small = SMALL.replace(**variant)
    big = small.replace(n=37, d=83)
    sizes = nj.Sizes(n=jnp.int32(small.n), d=jnp.int32(small.d))
    s_small, m_small = run(small)
    s_big, m_big = run(big, sizes=sizes)
    assert_trees_close(m_big, m_small, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        s_big.params["w"][:, :, : small.d], s_small.params["w"], rtol=1e-10, atol=1e-13
    )
    np.testing.assert_array_equal(s_big.params["w"][:, :, small.d :], 0.0)
    np.testing.assert_allclose(s_big.rho[..., : small.n], s_small.rho, rtol=1e-10, atol=1e-13)


def test_empty_flipped_subset_gives_nan_not_zero():
    _, metrics = run(SMALL, nj.HParams(eta=0.5, tau_plus=0.0, tau_minus=0.0))
    for name in (
        "train_loss_noisy",
        "train_acc_noisy",
        "rho_bar_noisy",
        "frac_noisy_above_log2",
        "loss_auroc",
    ):
        assert np.all(np.isnan(metrics[name])), name
    assert np.all(np.isfinite(metrics["train_loss_clean"]))


@pytest.mark.parametrize(
    "variant",
    [{"optimizer": "sgd", "batch_size": 6}, {"label_noise_gd": True}, {"activation": "leaky_relu"}],
)
def test_exact_recursion_rebuilds_the_filters(variant):
    cfg = SMALL.replace(**variant)
    key = jax.random.key(11)
    k_data, k_init, k_steps = jax.random.split(key, 3)
    train = nj.sample(k_data, cfg, HP)
    test = nj.sample(k_data, cfg, HP, split="test")
    w0 = nj.init_params(k_init, cfg, HP)
    state, _ = jax.jit(lambda p: nj.fit(p, train, test, cfg, HP, key=k_steps))(w0)
    rebuilt = nj.rebuild_displacement(state.gamma, state.rho, train, nj.geometry(train, cfg))
    np.testing.assert_allclose(state.params["w"] - w0["w"], rebuilt, rtol=1e-9, atol=1e-12)
    # rho_bar = rho 1(j = y_obs_i), rho_under = rho 1(j = -y_obs_i) (split by label).
    own = (np.array([1.0, -1.0])[:, None] * np.asarray(train.y_obs)[None]) > 0
    rho_bar, rho_under = np.asarray(state.rho_bar), np.asarray(state.rho_under)
    assert np.all(rho_bar[~own[:, None].repeat(cfg.m, 1)] == 0)
    assert np.all(rho_under[own[:, None].repeat(cfg.m, 1)] == 0)
    if cfg.label_noise_gd:  # re-flipped labels push some rho_bar below zero: it can fall
        assert np.any(rho_bar < 0)
    else:  # fixed labels: the split by label is the split by the increments' sign
        assert np.all(rho_bar >= 0) and np.all(rho_under <= 0)


def test_adam_coefficients_are_the_projection_of_the_displacement():
    cfg = SMALL.replace(optimizer="adam")
    hp = HP.replace(eta=0.01)
    k_data, k_init, _ = jax.random.split(jax.random.key(2), 3)
    train = nj.sample(k_data, cfg, hp)
    test = nj.sample(k_data, cfg, hp, split="test")
    w0 = nj.init_params(k_init, cfg, hp)
    state, _ = jax.jit(lambda p: nj.fit(p, train, test, cfg, hp))(w0)
    residual = (
        state.params["w"]
        - w0["w"]
        - nj.rebuild_displacement(state.gamma, state.rho, train, nj.geometry(train, cfg))
    )
    basis = jnp.concatenate([train.mu[None], train.x[:, 1]])
    assert float(jnp.abs(state.params["w"] - w0["w"]).max()) > 1e-3  # Adam moved the weights
    np.testing.assert_allclose(jnp.einsum("jmd,kd->jmk", residual, basis), 0.0, atol=1e-9)


def test_one_trace_per_static_config():
    traces = []

    def counted(key, hp):
        traces.append(1)
        return nj.make_train(SMALL)(key, hp)

    jitted = jax.jit(counted)
    for eta in (0.1, 0.2, 0.3):
        jitted(jax.random.key(0), HP.replace(eta=jnp.float64(eta)))
    assert len(traces) == 1


def test_two_stages_are_visible():
    """Stage I: clean samples fitted while flipped ones keep their true label; Stage II: memorized.

    n SNR^2 = 100 * 49 / 1000 = 4.9 as in the paper-scale setting (n=200, d=2000), smaller init.
    """
    cfg = nj.Config(n=100, d=1000, m=10, steps=400, log_every=2, n_test=100)
    hp = nj.HParams(eta=0.05, tau_plus=0.2, tau_minus=0.2, mu_norm=7.0, sigma_p=1.0, sigma_0=0.001)
    keys = jax.vmap(jax.random.key)(jnp.arange(4))
    _, m = jax.jit(jax.vmap(nj.make_train(cfg), in_axes=(0, None)))(keys, hp)
    clean, noisy = np.asarray(m["train_acc_clean"]), np.asarray(m["train_acc_noisy"])
    for s in range(4):
        stage_one = np.flatnonzero((clean[s] == 1.0) & (noisy[s] <= 0.1))
        assert stage_one.size, f"seed {s}: no logged step with clean fitted and flipped unfitted"
        assert np.any(noisy[s, stage_one[0] :] == 1.0), f"seed {s}: flipped never memorized"


ENGINE_NAMES = ("dense", "gram", "wishart")
STEP_OPTIONS = ({}, {"optimizer": "sgd", "batch_size": 8}, {"label_noise_gd": True})


def state_shapes(cfg):
    """(the carry at step 0, the state `fit` returns) of one run, as shapes: nothing computed."""
    engine = engines.get(cfg.step_engine)
    key = jax.random.key(0)

    def carry_and_final(key):
        params, train, test, val = nj.sample_run(key, cfg, HP)
        prepared, p_train, p_test, _ = engine.prepare(params, train, test, val)
        opt = train_lib.optimizer(cfg, HP.eta)
        carry = train_lib.init_state(prepared, opt, p_train, p_test, cfg)
        final, _ = nj.fit(params, train, test, cfg, HP, key=key, val=val)
        return carry, final

    return jax.eval_shape(carry_and_final, key)


def without_representation(state):
    """The state less the engine's own trees (params: W, or C and P; the optimizer's state)."""
    return state._replace(params=None, opt_state=None)


def test_train_state_has_one_structure_on_every_engine_and_config():
    structures = set()
    for engine in ENGINE_NAMES:
        for options in STEP_OPTIONS:
            carry, final = state_shapes(SMALL.replace(engine=engine, **options))
            assert jax.tree.structure(carry) == jax.tree.structure(final), (engine, options)
            kept = len(final.stages.kept_names)  # the snapshots, stacked along a first axis
            for state, lead in ((carry, ()), (final, ()), (final.stages.kept, (kept,))):
                assert state.gamma.shape == lead + (2, SMALL.m), (engine, options)
                assert state.rho_bar.shape == state.rho_under.shape == lead + (2, SMALL.m, SMALL.n)
            structures.add(jax.tree.structure(without_representation(carry)))
    assert len(structures) == 1
    # gram and wishart share the representation too: identical states, params included.
    gram, wishart = (state_shapes(SMALL.replace(engine=e))[0] for e in ("gram", "wishart"))
    assert jax.tree.structure(gram) == jax.tree.structure(wishart)


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_a_snapshot_keeps_what_its_engine_trains(engine):
    cfg = SMALL.replace(engine=engine)
    record = engines.get(engine)
    params, train, test, val = record.prepare(*nj.sample_run(jax.random.key(0), cfg, HP))
    state = train_lib.init_state(params, train_lib.optimizer(cfg, HP.eta), train, test, cfg)
    snap = stages.snapshot_of(state, record)
    np.testing.assert_array_equal(snap.w, params[record.weights])
    assert snap.w.shape[-1] == (SMALL.d if engine == "dense" else SMALL.n + 1)


@pytest.mark.parametrize("options", STEP_OPTIONS[1:], ids=["minibatch-sgd", "label-noise-gd"])
def test_fit_without_a_key_fails_where_the_run_draws_per_step(options):
    cfg = SMALL.replace(**options)
    params, train, test, _ = nj.sample_run(jax.random.key(0), cfg, HP)
    with pytest.raises(nj.ConfigError, match=r"^key=None is invalid"):
        nj.fit(params, train, test, cfg, HP)


def test_full_batch_gd_needs_no_key():
    cfg = SMALL.replace(steps=10, log_every=10)
    params, train, test, _ = nj.sample_run(jax.random.key(0), cfg, HP)
    without = jax.jit(lambda p: nj.fit(p, train, test, cfg, HP))(params)
    given = jax.jit(lambda p: nj.fit(p, train, test, cfg, HP, key=jax.random.key(7)))(params)
    jax.tree.map(np.testing.assert_array_equal, without, given)
