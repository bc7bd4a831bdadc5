"""Real-image models, metrics, training loop, stages and attributions (tiny sizes, CPU)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from noisyjax.real.attributions import integrated_gradients
from noisyjax.real.config import RealConfig, RealHParams
from noisyjax.real.datasets import load
from noisyjax.real.models import PatchConv, make_model, margin
from noisyjax.real.stages import rank_auroc
from noisyjax.real.train import learning_rate, make_train
from noisyjax.synthetic.metrics import auroc
from tests.test_real_data import write_cifar_tarball

TINY = RealConfig(width=4, epochs=6, batch_size=32, lr_milestones=(4,), eval_batch=64)
HP = RealHParams(
    lr=np.float32(0.05),
    weight_decay=np.float32(5e-4),
    tau_plus=np.float32(0.2),
    tau_minus=np.float32(0.2),
)


def test_patch_conv_is_a_same_padded_3x3_convolution():
    x = jax.random.normal(jax.random.key(0), (2, 6, 5, 3), jnp.float32)
    patch = PatchConv(4)
    params = patch.init(jax.random.key(1), x)
    conv = nn.Conv(4, (3, 3), padding="SAME")
    expected = conv.apply(params, x)
    np.testing.assert_allclose(patch.apply(params, x), expected, rtol=1e-5, atol=1e-5)


def test_rank_auroc_equals_the_pairwise_auroc_with_ties():
    rng = np.random.default_rng(0)
    score = jnp.asarray(rng.integers(0, 5, 40).astype(np.float32))  # many ties
    positive = jnp.asarray(rng.random(40) < 0.3)
    np.testing.assert_allclose(
        rank_auroc(score, positive), auroc(score, positive, ~positive), rtol=1e-6
    )
    assert np.isnan(rank_auroc(score, jnp.zeros(40, bool)))


@pytest.mark.parametrize("milestones", [(), (4,), (50, 75), (1, 2, 3)])
def test_step_schedule_is_lr_times_the_float32_product_of_the_factors(milestones):
    """Bit for bit lr (gamma gamma ...) (optax's piecewise_constant_schedule would round it as
    ((lr gamma) gamma) and differ for many lr), through the last milestone and after it."""
    cfg = RealConfig(epochs=100, lr_milestones=milestones, lr_gamma=0.1)
    steps_per_epoch = 7
    lr_L = np.random.default_rng(0).uniform(1e-4, 1.0, 64).astype(np.float32)
    count_C = np.arange(101 * steps_per_epoch, dtype=np.int32)
    per_step = jax.vmap(lambda lr, count: learning_rate(cfg, lr, steps_per_epoch)(count))
    schedule = jax.vmap(lambda lr: per_step(jnp.full(count_C.shape, lr), count_C))
    got_LC = np.asarray(jax.jit(schedule)(lr_L))
    crossed_C = np.sum(count_C[:, None] >= np.asarray(milestones, int) * steps_per_epoch, 1)
    factor_K = np.cumprod(np.r_[np.float32(1), np.full(len(milestones), 0.1, np.float32)])
    expected_LC = lr_L[:, None] * factor_K.astype(np.float32)[crossed_C][None, :]
    assert got_LC.dtype == np.float32 and got_LC.tobytes() == expected_LC.tobytes()


def test_integrated_gradients_are_complete():
    model = make_model(TINY)
    params, stats = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (3, 8, 8, 1), jnp.float32)
    label = jnp.asarray([0, 1, 1], jnp.int32)

    def logits_fn(v):
        return model.logits(params, stats, v, False)[0]

    attr = integrated_gradients(logits_fn, x, label, None, 256)
    gap = margin(logits_fn(x), label) - margin(logits_fn(jnp.zeros_like(x)), label)
    np.testing.assert_allclose(attr.sum(axis=(1, 2, 3)), gap, rtol=2e-2, atol=2e-3)


@pytest.fixture(scope="module")
def digits():
    return load(TINY)


@pytest.fixture(scope="module")
def vmapped_run(digits):
    train = make_train(TINY)
    # Three runs: seeds 0 and 1 at the noise rates of HP, and seed 0 without label noise.
    no_noise = HP.replace(tau_plus=np.float32(0.0), tau_minus=np.float32(0.0))
    hp = jax.tree.map(lambda a, b: np.stack([a, a, b]), HP, no_noise)
    keys = jax.vmap(jax.random.key)(np.asarray([0, 1, 0]))
    state, metrics = jax.jit(jax.vmap(train, in_axes=(0, 0, None)))(keys, hp, digits)
    return jax.device_get(state), jax.device_get(metrics)


def test_vmapped_runs_equal_single_runs(digits, vmapped_run):
    _, metrics = vmapped_run
    _, single = jax.jit(make_train(TINY))(jax.random.key(1), HP, digits)
    for name in ("train_acc_clean", "train_acc_noisy", "test_acc", "t1", "sample_flipped"):
        np.testing.assert_allclose(metrics[name][1], single[name], rtol=1e-5, atol=1e-6)


def test_metrics_and_stage_times_agree_with_the_trajectories(digits, vmapped_run):
    state, m = vmapped_run
    n = len(digits.label_train)
    assert m["train_acc"].shape == (3, TINY.epochs + 1)
    np.testing.assert_array_equal(m["epoch"][0], np.arange(TINY.epochs + 1))
    assert m["sample_flipped"][0].sum() == round(0.2 * n)
    assert m["sample_flipped"][2].sum() == 0
    assert np.all(np.isnan(m["train_acc_noisy"][2]))  # tau = 0: no flipped sample
    np.testing.assert_allclose(m["test_err"], 1 - m["test_acc"], atol=1e-6)
    for r in range(3):
        clean, total = m["train_acc_clean"][r], m["train_acc"][r]
        expect_t1 = int(np.argmax(clean == 1.0)) if np.any(clean == 1.0) else -1
        expect_t2 = int(np.argmax(total == 1.0)) if np.any(total == 1.0) else -1
        assert m["t1"][r] == expect_t1 and m["t2"][r] == expect_t2
        assert m["t_best"][r] == int(np.argmax(m["test_acc"][r]))
        assert m["best_test_err"][r] == pytest.approx(1 - m["test_acc"][r].max(), abs=1e-6)
        assert m["t_cross"][r] == -1
        best = state.stages.snapshots["t_best"]
        assert best.epoch[r] == m["t_best"][r]
    # The overall accuracy mixes the clean and flipped accuracies in the flip proportion.
    rate = m["flip_rate_realized"][0]
    mix = (1 - rate) * m["train_acc_clean"][0] + rate * m["train_acc_noisy"][0]
    np.testing.assert_allclose(m["train_acc"][0], mix, atol=1e-5)
    # Flipped samples: correct w.r.t. the observed label or the true one, never both.
    assert np.all(m["train_acc_noisy"][0] + m["train_acc_noisy_true"][0] <= 1 + 1e-6)


def test_t_best_snapshot_reproduces_the_recorded_test_accuracy(digits, vmapped_run):
    state, m = vmapped_run
    model = make_model(TINY)
    snap = jax.tree.map(lambda a: a[0], state.stages.snapshots["t_best"])
    logits = model.logits(
        snap.variables["params"], snap.variables["batch_stats"], digits.x_test, False
    )[0]
    acc = float(np.mean(np.asarray(margin(logits, digits.label_test)) > 0))
    assert acc == pytest.approx(1 - m["best_test_err"][0], abs=1e-6)


def test_vgg11_takes_a_step_on_a_generated_cifar_tarball(tmp_path):
    path = tmp_path / "cifar-10-python.tar.gz"
    write_cifar_tarball(path, per_batch=10)
    cfg = RealConfig(
        dataset="cifar2",
        classes=(0, 1),
        model="vgg11",
        width=2,
        epochs=1,
        batch_size=8,
        eval_batch=16,
        cifar_path=str(path),
    )
    images = load(cfg)
    assert images.x_train.shape == (10, 32, 32, 3)
    state, m = jax.jit(make_train(cfg))(jax.random.key(0), HP, images)
    assert np.all(np.isfinite(m["train_loss"])) and m["train_acc"].shape == (2,)
    _, stats0 = make_model(cfg).init(jax.random.key(0))
    moved = jax.tree.map(lambda a, b: bool(np.any(a != b)), state.batch_stats, stats0)
    assert any(jax.tree.leaves(moved))  # BatchNorm running statistics were updated


def test_initialization_follows_flax_defaults():
    cfg = RealConfig(dataset="cifar2", classes=(0, 1), model="vgg11", width=4)
    params, stats = make_model(cfg).init(jax.random.key(0))
    conv = params["Conv_3"]["kernel"]  # (3, 3, 16, 16): fan-in 144
    assert conv.shape == (3, 3, 16, 16)
    assert float(jnp.std(conv)) == pytest.approx(np.sqrt(1 / 144), rel=0.1)
    assert float(jnp.max(jnp.abs(conv))) <= 2 * np.sqrt(1 / 144) / 0.8796 + 1e-6
    assert not jnp.any(params["Conv_3"]["bias"]) and jnp.all(params["BatchNorm_3"]["scale"] == 1)
    assert jnp.all(stats["BatchNorm_0"]["var"] == 1) and not jnp.any(stats["BatchNorm_0"]["mean"])
