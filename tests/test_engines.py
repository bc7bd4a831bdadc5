"""The gram and wishart engines against the dense one (docs/science.md section 9).

gram runs the same data in coefficient space: every logged quantity must agree with dense (float64
to 1e-9). wishart draws the Gram matrices from their law instead of materializing d-dimensional
vectors: its Gram entries, log-determinants and the resulting test errors must follow the law of
the materialized ones, checked by moments against the closed forms and by two-sample tests.
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import noisyjax as nj
from noisyjax.synthetic import engines
from noisyjax.synthetic.config import ENGINES
from noisyjax.synthetic.engines import wishart

HP = nj.HParams(eta=0.2, tau_plus=0.2, tau_minus=0.2, mu_norm=2.5, sigma_p=1.0, sigma_0=0.01)
DISCRETE = {  # metrics that count samples: a float32 rounding can move one sample or one pair
    "train_acc",
    "train_acc_clean",
    "train_acc_noisy",
    "train_acc_noisy_true",
    "test_err",
    "test_err_noisy_labels",
    "frac_clean_below_log2",
    "frac_noisy_above_log2",
    "loss_auroc",
    "val_err",
    "val_err_noisy_labels",
}


@functools.cache
def trained(engine: str, dtype: str, options: tuple = ()) -> dict[str, np.ndarray]:
    cfg = nj.Config(
        n=40, d=400, m=5, steps=500, log_every=10, n_test=200, engine=engine, dtype=dtype,
        **dict(options),
    )  # fmt: skip
    hp = nj.HParams(**{k: np.asarray(v, dtype) for k, v in vars(HP).items()})
    hp = hp.replace(relabel_rate=np.asarray(0.1, dtype))
    state, metrics = jax.jit(nj.make_train(cfg))(jax.random.key(3), hp)
    # The decomposition at the end and in every snapshot (read off C on gram, carried on dense).
    fields = ("gamma", "rho_bar", "rho_under")
    out = {**metrics, **{f"final_{f}": getattr(state, f) for f in fields}}
    for name, snap in state.stages.snapshots.items():
        out.update({f"{name}_snapshot_{f}": getattr(snap, f) for f in (*fields, "step")})
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


KOU_OPTIONS = (
    ("bias", True),
    ("init", "torch"),
    ("output_scale", "kou"),
    ("noise", "isotropic"),
    ("n_val", 100),
    ("log_samples", True),
)


# Minibatch SGD keeps the labels fixed (gamma and rho read off C on gram); label-noise GD
# changes them every step (accumulated as on dense).
SGD = (("optimizer", "sgd"), ("batch_size", 16))
LABEL_NOISE_GD = (("label_noise_gd", True),)


@pytest.mark.parametrize(
    "options",
    [(), KOU_OPTIONS, SGD, LABEL_NOISE_GD],
    ids=["paper", "kou-options", "minibatch-sgd", "label-noise-gd"],
)
def test_gram_equals_dense_in_float64(options):
    dense, gram = trained("dense", "float64", options), trained("gram", "float64", options)
    assert set(dense) == set(gram)
    assert dense["t2"] > 0  # the run goes somewhere: flipped samples get fitted
    for name in dense:
        np.testing.assert_allclose(gram[name], dense[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_gram_equals_dense_on_a_padded_run_with_bias_and_minibatches():
    """Padding samples (x = 0, label 1, mask False) take no batch slot and move no coefficient,
    even with a bias, whose pre-activation on them is not zero."""
    cfg = nj.Config(
        n=12, d=60, m=3, steps=60, log_every=10, n_test=50, dtype="float64", bias=True,
        optimizer="sgd", batch_size=10,
    )  # fmt: skip
    sizes = nj.Sizes(n=np.int32(9), d=np.int32(60))
    hp = nj.HParams(**{k: np.asarray(v, np.float64) for k, v in vars(HP).items()})
    out = {}
    for engine in ("dense", "gram"):
        train = jax.jit(nj.make_train(cfg.replace(engine=engine)))
        state, metrics = train(jax.random.key(5), hp, sizes)
        out[engine] = {**metrics, "gamma": state.gamma, "rho": state.rho}
    for name, a in out["dense"].items():
        np.testing.assert_allclose(out["gram"][name], a, rtol=1e-9, atol=1e-12, err_msg=name)
    assert np.all(np.asarray(out["dense"]["rho"])[..., 9:] == 0)  # padding moves nothing


def test_gram_equals_dense_in_float32():
    """Continuous trajectories agree to 1e-4 of their scale; counts to one sample (or pair)."""
    dense, gram = trained("dense", "float32"), trained("gram", "float32")
    for name, a in dense.items():
        b = gram[name]
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
        if np.all(np.isnan(a)):  # e.g. the probes of a marker that never happens
            continue
        if name in DISCRETE:
            assert np.nanmax(np.abs(a - b)) <= 1 / 200 + 1e-6, name  # one of 200 test samples
            assert np.mean(a == b) > 0.9, name
        else:
            scale = max(np.nanmax(np.abs(a)), 1e-30)
            assert np.nanmax(np.abs(a - b)) <= 1e-4 * scale, name


def test_auto_picks_the_cheapest_engine_the_setting_allows():
    assert nj.Config(n=200, d=2000, m=20, engine="auto").step_engine == "wishart"
    assert nj.Config(n=200, d=200, m=20, engine="auto").step_engine == "dense"
    assert nj.Config(n=20, d=2000, m=5, engine="auto", optimizer="adam").step_engine == "dense"
    assert nj.Config(engine="gram").step_engine == "gram"


def test_the_registry_holds_every_engine_the_config_accepts():
    assert set(engines.REGISTRY) == set(ENGINES) - {"auto"}
    for name, engine in engines.REGISTRY.items():
        assert engine.name == name
        functions = set(engines.Engine._fields) - {"name", "weights", "accumulates", "loop_draw"}
        assert all(callable(getattr(engine, f)) for f in functions), name


def test_memory_terms_per_engine():
    cfg = nj.Config(n=30, d=500, m=4, n_test=70, n_val=10)
    dense, gram, wis = (engines.get(e).memory(cfg) for e in ("dense", "gram", "wishart"))
    assert dense == engines.Memory(d_data=500, d_step=500, projections=0)
    projections = 2 * (30 + 70 + 10) * (2 * 4 + 30 + 1)  # <xi, W(0)> and <xi, V> of every set
    assert gram == engines.Memory(d_data=500, d_step=31, projections=projections)
    assert wis == engines.Memory(d_data=cfg.reduced_d, d_step=31, projections=projections)


# --- wishart: the law of the sampled Gram matrices ------------------------------------------

DRAWS = 2000


def grams(cfg: nj.Config, hp: nj.HParams, draws: int, materialized: bool) -> np.ndarray:
    """Joint Gram matrices of [mu; w(0) (2m rows); xi (n rows)] over `draws` runs: (R, F, F)."""

    def one(key):
        if materialized:
            params, train, _, _ = nj.sample_run(key, cfg.replace(engine="dense"), hp)
        else:
            k_data, k_init = jax.random.split(key, 3)[:2]
            params, train, _, _ = wishart.sample_run(k_data, k_init, cfg, hp)
        rows = jnp.concatenate(
            [train.mu[None], params["w"].reshape(2 * cfg.m, -1), train.x[:, 1]], axis=0
        )
        return rows @ rows.T

    keys = jax.random.split(jax.random.key(11 if materialized else 12), draws)
    return np.asarray(jax.jit(jax.vmap(one))(keys))


@pytest.mark.parametrize(
    ("d", "noise", "init"),
    [(12, "orthogonal", "gaussian"), (60, "isotropic", "gaussian"), (400, "orthogonal", "torch")],
)
def test_wishart_grams_follow_the_materialized_law(d, noise, init):
    n, m = 5, 2  # d = 12 leaves d - 1 - 2m = 7 directions for the 5 noise vectors
    cfg = nj.Config(
        n=n, d=d, m=m, n_test=4, engine="wishart", noise=noise, init=init, dtype="float64"
    )
    hp = nj.HParams(mu_norm=1.5, sigma_p=0.7, sigma_0=0.3)
    g_mat, g_wis = grams(cfg, hp, DRAWS, True), grams(cfg, hp, DRAWS, False)
    f = 1 + 2 * m + n
    xi = slice(1 + 2 * m, f)
    # Closed forms for the noise block: ||xi||^2 ~ sigma_p^2 chi^2(k), k = d - 1 or d.
    k = d - 1 if noise == "orthogonal" else d
    sq = g_wis[:, xi, xi][:, 0, 0]
    se = np.sqrt(2 * k) * hp.sigma_p**2 / np.sqrt(DRAWS)
    assert abs(sq.mean() - hp.sigma_p**2 * k) < 4 * se
    assert abs(sq.var() / (2 * k * hp.sigma_p**4) - 1) < 0.15
    # Every entry: same mean and variance, and a two-sample KS test (entries and log-dets).
    for a in range(f):
        for b in range(a, f):
            x, y = g_mat[:, a, b], g_wis[:, a, b]
            if np.ptp(y) == 0:  # ||mu||^2, and <mu, xi> = 0 (orthogonal noise): constants
                np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-9)
                continue
            assert stats.ks_2samp(x, y).pvalue > 1e-4, (a, b)
    logdet = [np.linalg.slogdet(g[:, 1:, 1:])[1] for g in (g_mat, g_wis)]
    assert stats.ks_2samp(*logdet).pvalue > 1e-4


def test_wishart_rows_are_a_prefix_when_n_is_padded():
    cfg = nj.Config(n=6, d=50, m=2, n_test=5, engine="wishart")
    small = nj.sample_run(jax.random.key(5), cfg, HP, nj.Sizes(n=4, d=50))
    full = nj.sample_run(jax.random.key(5), cfg.replace(n=4), HP)
    np.testing.assert_array_equal(small[1].x[:4, :, : 1 + 4 + 4], full[1].x)
    np.testing.assert_array_equal(small[0]["w"][..., :9], full[0]["w"])


def test_wishart_test_error_matches_explicit_test_sets_in_distribution():
    """Over many runs, the final test errors (and the training outcome) of wishart runs and of
    dense runs with explicit d-dimensional test sets have the same distribution."""
    cfg = nj.Config(
        n=20, d=200, m=4, steps=40, log_every=40, n_test=100, eval_every=40, flip="exact"
    )
    hp = nj.HParams(eta=0.5, tau_plus=0.2, tau_minus=0.2, mu_norm=2.0, sigma_0=0.05)
    runs = 256

    def final(engine: str) -> dict[str, np.ndarray]:
        train = nj.make_train(cfg.replace(engine=engine))
        keys = jax.random.split(jax.random.key(21), runs)
        _, metrics = jax.jit(jax.vmap(lambda k: train(k, hp)))(keys)
        return {k: np.asarray(metrics[k])[:, -1] for k in ("test_err", "train_loss", "gamma_max")}

    dense, wis = final("dense"), final("wishart")
    for name in dense:
        assert np.std(dense[name]) > 0.05 * abs(np.mean(dense[name])), name  # not degenerate
        assert stats.ks_2samp(dense[name], wis[name]).pvalue > 1e-3, name
        se = np.sqrt(dense[name].var() / runs + wis[name].var() / runs)
        assert abs(dense[name].mean() - wis[name].mean()) < 4 * se, name


def test_wishart_never_allocates_an_array_of_size_d():
    d = 10**7
    cfg = nj.Config(n=20, d=d, m=4, steps=20, log_every=10, n_test=100, engine="wishart")
    hp = nj.HParams(mu_norm=float(np.sqrt(4 * d / 20)), sigma_0=0.001, eta=0.5)  # n SNR^2 = 4
    train = nj.make_train(cfg)
    text = str(jax.make_jaxpr(train)(jax.random.key(0), hp))  # nested scans included
    shapes = re.findall(r"\[([0-9,]+)\]", text)
    assert shapes and max(int(v) for s in shapes for v in s.split(",")) < 1000
    _, metrics = jax.jit(train)(jax.random.key(0), hp)
    assert float(metrics["train_acc_clean"][-1]) == 1.0
