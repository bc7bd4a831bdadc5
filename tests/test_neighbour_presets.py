"""Presets of neighbouring papers (sweeps/presets/kou.py, cao.py, lngd.py): settings match the
papers and their code, every preset runs end to end at tiny sizes and draws its figures."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import xarray as xr

import noisyjax as nj
from noisyjax.sweep import Axis
from noisyjax.synthetic.train import step_labels_and_weights
from sweeps import grid
from sweeps.presets import PRESETS, cao, kou

NAMES = ("kou2023", "kou2023-grid", "cao2022", "lngd2025", "lngd2025-heatmap")


def axis(sweep, name):
    return next(a for a in sweep.axes if a.name == name)


def test_presets_are_registered_and_listed(capsys):
    assert grid.main(["--list-presets"]) == 0
    listed = capsys.readouterr().out
    for name in NAMES:
        assert name in PRESETS and name in listed


@pytest.mark.parametrize("name", ["kou2023", "kou2023-grid"])
def test_kou_settings_are_their_code(name):
    sweep, _ = PRESETS[name]()
    cfg, hp = sweep.cfg, sweep.hp
    # uclaml/Benign_ReLU_CNN: DATA_NUM 20, TEST_DATA_NUM 1000, out_channel 10, lr 0.1, 100 epochs
    # of full-batch SGD, Noiselevel 1 (isotropic, the orthogonalization is commented out),
    # flip 0.1 on every label, training and test, Conv1d with bias and default init.
    assert (cfg.n, cfg.m, cfg.n_test, cfg.steps) == (20, 10, 1000, 100)
    assert (cfg.optimizer, cfg.activation, cfg.noise, cfg.signal) == (
        "gd",
        "relu",
        "isotropic",
        "e1",
    )
    assert (cfg.bias, cfg.init, cfg.output_scale, cfg.flip) == (True, "torch", "kou", "bernoulli")
    assert cfg.label_noise_gd is False
    assert (hp.eta, hp.tau_plus, hp.tau_minus, hp.sigma_p) == (0.1, 0.1, 0.1, 1.0)
    if name == "kou2023":  # their single run: bmu = 5, PATCH_LEN = 100
        assert (cfg.d, hp.mu_norm, sweep.n_runs) == (100, 5.0, 1)
    else:  # their loop: bmu = 0.1 s, PATCH_LEN = 100 + 10 t, s, t < 100, 10 repeats
        np.testing.assert_allclose(axis(sweep, "mu_norm").values, 0.1 * np.arange(100))
        assert axis(sweep, "d").values == tuple(100 + 10 * t for t in range(100))
        assert sweep.seeds == 10 and sweep.n_runs == 100_000
        assert cfg.engine == "auto"


def test_cao_settings():
    sweep, _ = PRESETS["cao2022"]()
    cfg, hp = sweep.cfg, sweep.hp
    assert (cfg.activation, cfg.q, cfg.noise) == ("relu_q", 3.0, "orthogonal")
    assert hp.tau_plus == hp.tau_minus == 0.0
    table = nj.expand(sweep)
    snr = table.hp["mu_norm"] / (table.hp["sigma_p"] * np.sqrt(table.shape["d"]))
    np.testing.assert_allclose(np.unique(snr), cao.CAO_SNR, rtol=1e-9)
    assert tuple(np.unique(table.shape["n"])) == cao.CAO_N


def test_lngd_settings():
    sweep, _ = PRESETS["lngd2025"]()
    cfg, hp = sweep.cfg, sweep.hp
    # arXiv 2510.17526: squared ReLU, n = 200, 2000 test, d = 2000, m = 20, eta = 0.5,
    # mu = 2 e_1, sigma_p^2 = 0.25, p = 0.1, 2000 steps, clean training labels.
    assert (cfg.activation, cfg.q, cfg.noise, cfg.signal) == ("relu_q", 2.0, "orthogonal", "e1")
    assert (cfg.n, cfg.n_test, cfg.d, cfg.m, cfg.steps) == (200, 2000, 2000, 20, 2000)
    assert (hp.eta, hp.mu_norm, hp.sigma_p**2, hp.tau_plus, hp.tau_minus) == (0.5, 2, 0.25, 0, 0)
    assert cfg.label_noise_gd and axis(sweep, "relabel_rate").values == (0.0, 0.1)
    heat, _ = PRESETS["lngd2025-heatmap"]()
    assert (heat.cfg.steps, heat.hp.eta) == (1000, 1.0)
    table = nj.expand(heat)
    snr = table.hp["mu_norm"] / (table.hp["sigma_p"] * np.sqrt(table.shape["d"]))
    assert np.isclose(snr.min(), 0.03) and np.isclose(snr.max(), 0.10)
    assert table.shape["n"].min() == 100 and table.shape["n"].max() == 700


def test_relabel_rate_zero_is_plain_gd():
    """GD and label-noise GD share one sweep (label_noise_gd=True, relabel_rate in {0, p}): with
    relabel_rate = 0 the labels of every step are the observed labels, so that run is GD."""
    cfg = nj.Config(n=50, d=8, m=2, label_noise_gd=True)
    hp = nj.HParams(tau_plus=0.2, tau_minus=0.2)
    train = nj.sample(jax.random.key(0), cfg, hp)
    for step in range(20):
        key = jax.random.fold_in(jax.random.key(1), step)
        labels, _ = step_labels_and_weights(key, train, cfg, hp.replace(relabel_rate=0.0))
        np.testing.assert_array_equal(labels, train.y_obs)
    labels, _ = step_labels_and_weights(key, train, cfg, hp.replace(relabel_rate=0.4))
    assert np.any(labels != train.y_obs)  # the switch is live


def test_kou_boundary_fit_recovers_a_planted_boundary():
    """Cells with n b^4 < C d err at 0.5, the others at the flip rate: the fit finds C and the
    exponent 1/4 of b* in d."""
    b = np.round(0.1 * np.arange(100), 1)
    d = 100 + 10 * np.arange(100)
    n, c = 20, 400.0
    err_DB = np.where(n * b[None, :] ** 4 < c * d[:, None], 0.5, 0.1)
    err = xr.DataArray(
        np.repeat(err_DB[None], 2, axis=0),
        dims=("seed", "d", "mu_norm"),
        coords={"d": d, "mu_norm": b},
    )
    fit = kou.boundary_fit(err, n)
    assert abs(fit["C"] / c - 1) < 0.1
    assert abs(fit["slope"].coef[1] - 0.25) < 0.02


def tiny(sweep, **changes):
    """The preset's sweep at tiny sizes: same options, two values per axis, one seed."""
    axes = []
    for a in sweep.axes:
        values = {"d": (30, 40), "n": (8, 12)}.get(
            a.name, a.values[:: max(1, len(a.values) // 2)][:2]
        )
        axes.append(Axis(a.name, values))
    cfg = sweep.cfg.replace(**changes)
    return dataclasses.replace(sweep, cfg=cfg, axes=tuple(axes), seeds=1)


SMALL = dict(n=12, d=40, m=3, n_test=40, steps=4, log_every=2, eval_every=2, snapshot_stages=())
FIGURES = {
    "kou2023": ["kou_margins.png", "kou_loss_error.png"],
    "kou2023-grid": ["kou_grid_test_error.png", "kou_grid_threshold.png"],
    "cao2022": ["cao_test_error.png", "cao_collapse.png"],
    "lngd2025": ["lngd_trajectories.png", "lngd_final_error.png"],
    "lngd2025-heatmap": ["lngd_heatmap.png"],
}


def fake_results(sweep, seed=0):
    """A results Dataset laid out as `load_sweep` returns it (axes, seed, step; each run's
    hyperparameters and shapes as coordinates), random metrics: figures without a compile."""
    rng = np.random.default_rng(seed)
    table = nj.expand(sweep)
    shape = sweep.shape
    steps = np.arange(sweep.cfg.n_logs) * sweep.cfg.log_every
    coords = {a.name: list(a.values) for a in sweep.axes} | {"seed": np.arange(sweep.seeds)}
    coords["step"] = steps
    axis_names = {a.name for a in sweep.axes}
    for name, col in {**table.hp, **table.shape}.items():
        if name not in axis_names:
            coords[name] = (sweep.dims, col.reshape(shape))
    data = {
        v: (sweep.dims + ("step",), rng.uniform(0, 0.6, shape + (len(steps),)))
        for v in ("test_err", "test_err_noisy_labels", "train_loss", "gamma_max", "rho_bar_clean")
    }
    return xr.Dataset(data, coords=coords)


@pytest.mark.parametrize("name", NAMES)
def test_preset_plans_at_tiny_size_and_draws(name, tmp_path):
    """Every preset's grid is valid and planned; its figures draw from results of its layout."""
    sweep, draw = PRESETS[name]()
    nj.plan(tiny(sweep, **SMALL))
    if name == "kou2023":
        return  # drawn end to end below: its figure replays the run
    paths = draw(fake_results(sweep if sweep.n_runs < 2000 else tiny(sweep)), tmp_path)
    assert [p.name for p in paths] == FIGURES[name]
    for p in paths:
        assert p.stat().st_size > 1000, p


def test_kou2023_runs_end_to_end(tmp_path):
    """Trained for real at a tiny size: the margin figure replays the run and raises unless the
    replay reproduces the logged training loss at every step."""
    name = "kou2023"
    sweep, draw = PRESETS[name]()
    small = tiny(sweep, **(SMALL | {"steps": 6, "log_every": 1, "eval_every": 1}))
    ds = nj.run_sweep(nj.plan(small), tmp_path, figures=draw, progress=False)
    for fig in FIGURES[name]:
        assert (tmp_path / fig).stat().st_size > 1000, fig
    assert np.all(np.isfinite(ds["test_err"].values))


def test_kou_options_train_like_their_model():
    """Ten GD steps of noisyjax with the kou2023 options (bias, output scale, loss) from the same
    weights and data equal ten steps of an independent NumPy model of their PyTorch code
    (benchmarks/bench_kou_sequential.py: Conv1d + ReLU + mean over patches + per-class sum,
    2-logit cross-entropy), in float64."""
    from benchmarks import bench_kou_sequential as kou

    rng = np.random.default_rng(0)
    d = 12
    x, labels = kou.make_data(rng, 2.0, d)
    x, labels = x[: kou.N_TRAIN].astype(np.float64), labels[: kou.N_TRAIN]
    w, bias = (a.astype(np.float64) for a in kou.torch_init(rng, d))
    sweep, _ = PRESETS["kou2023"]()
    cfg = sweep.cfg.replace(d=d, dtype="float64")
    # Their class 1 (y = +1) is filters m..2m-1; noisyjax's filter group 0 is j = +1.
    m = kou.M
    params = {
        "w": jnp.asarray(np.stack([w[m:], w[:m]])),
        "b": jnp.asarray(np.stack([bias[m:], bias[:m]])),
    }
    y_obs = jnp.asarray(2.0 * labels - 1.0)
    x_j = jnp.asarray(x)

    def loss(p):
        return jnp.mean(jax.nn.softplus(-y_obs * nj.apply(p, x_j, cfg)))

    grad = jax.jit(jax.grad(loss))
    onehot = np.eye(2)[labels]
    for _ in range(10):
        w, bias = kou.sgd_step(w, bias, x, onehot, lr=sweep.hp.eta)
        params = jax.tree.map(lambda a, g: a - sweep.hp.eta * g, params, grad(params))
    np.testing.assert_allclose(params["w"], np.stack([w[m:], w[:m]]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(params["b"], np.stack([bias[m:], bias[:m]]), rtol=1e-10, atol=1e-12)
