"""Minibatch SGD on binary images: `lax.scan` over epochs, metrics per epoch as scan outputs.

`make_train(cfg)` closes over the static config and returns a pure
`train(key, hp, images) -> (RealState, metrics)`: the run's key draws its label flips, its
initialization and its minibatch order; `images` (the same for every run) is an argument, so a
caller vmaps over keys and hyperparameters with `in_axes=(0, 0, None)`. Nothing here is jitted.

Shape letters: N training images, B batch, S steps per epoch, E epochs, H W C image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from noisyjax.real.config import RealConfig, RealHParams
from noisyjax.real.datasets import Images, flip_labels
from noisyjax.real.models import Model, make_model, margin
from noisyjax.real.stages import (
    RealSnapshot,
    RealStages,
    init_stages,
    loss_metrics,
    observe,
    summary,
)
from noisyjax.synthetic.data import flip_rates
from noisyjax.synthetic.metrics import fraction, masked_mean

Metrics = dict[str, jax.Array]


class RealState(NamedTuple):
    """The scan carry."""

    params: Any
    batch_stats: Any
    opt_state: Any
    epoch: jax.Array  # () int32: epochs completed
    stages: RealStages
    diverged: jax.Array  # () bool: a non-finite minibatch loss was seen
    flipped: jax.Array  # (N,) bool: this run's flip mask
    loss: jax.Array  # (N,) observed-label loss of each training sample at the last measure


def snapshot_of(state: RealState) -> RealSnapshot:
    """The network of `state`, with its epoch and the run's flip mask."""
    variables = {"params": state.params, "batch_stats": state.batch_stats}
    return RealSnapshot(variables, state.epoch, state.flipped)


def learning_rate(cfg: RealConfig, lr: jax.Array, steps_per_epoch: int) -> optax.Schedule:
    """Step schedule: lr times lr_gamma^k from the k-th milestone epoch on.

    optax's piecewise_constant_schedule would round lr gamma gamma as (lr gamma) gamma; the
    pieces here are lr (gamma gamma), the per-step rates every run has used, bit for bit."""
    scales = [jnp.ones((), lr.dtype)]
    for _ in cfg.lr_milestones:
        scales.append(scales[-1] * cfg.lr_gamma)
    return optax.join_schedules(
        [optax.constant_schedule(lr * scale) for scale in scales],
        [epoch * steps_per_epoch for epoch in cfg.lr_milestones],
    )


def optimizer(cfg: RealConfig, hp: RealHParams, steps_per_epoch: int):
    """torch.optim.SGD: weight decay added to the gradient, then heavy-ball momentum."""
    lr = jnp.asarray(hp.lr, jnp.float32)
    return optax.chain(
        optax.add_decayed_weights(jnp.asarray(hp.weight_decay, jnp.float32)),
        optax.sgd(learning_rate(cfg, lr, steps_per_epoch), momentum=cfg.momentum or None),
    )


def all_logits(model: Model, params, batch_stats, x_NHWC: jax.Array, eval_batch: int):
    """Inference logits (N, 2): the images zero-padded to whole batches of `eval_batch` and
    mapped one batch after another (one copy of the network in the compiled program)."""
    n = x_NHWC.shape[0]
    size = min(eval_batch, n)
    batches = -(-n // size)
    pad_NHWC = jnp.pad(x_NHWC, ((0, batches * size - n), (0, 0), (0, 0), (0, 0)))
    logits_GB2 = jax.lax.map(
        lambda x_BHWC: model.logits(params, batch_stats, x_BHWC, False)[0],
        pad_NHWC.reshape(batches, size, *x_NHWC.shape[1:]),
    )
    return logits_GB2.reshape(batches * size, 2)[:n]


def measure(
    model: Model, state: RealState, x_eval: jax.Array, images: Images, y_obs_N, flipped_N, cfg
) -> tuple[Metrics, jax.Array]:
    """One epoch's metrics (docs/science.md sections 4 and 8) and the observed-label margins.

    `x_eval` is the training images followed by the test images (one pass over both)."""
    n = y_obs_N.shape[0]
    all_N2 = all_logits(model, state.params, state.batch_stats, x_eval, cfg.eval_batch)
    train_N2, test_N2 = all_N2[:n], all_N2[n:]
    z_N = margin(train_N2, y_obs_N)
    correct_N = (z_N > 0).astype(jnp.float32)
    n_test = images.label_test.shape[0]
    test_right = jnp.sum(margin(test_N2, images.label_test) > 0)
    test_acc = fraction(test_right, n_test, jnp.float32)
    metrics = {
        "train_acc": fraction(jnp.sum(z_N > 0), n, jnp.float32),
        "train_acc_clean": masked_mean(correct_N, ~flipped_N),
        "train_acc_noisy": masked_mean(correct_N, flipped_N),
        # Predicting the true label of a flipped sample is a negative observed margin.
        "train_acc_noisy_true": masked_mean((z_N < 0).astype(jnp.float32), flipped_N),
        "test_acc": test_acc,
        "test_err": fraction(n_test - test_right, n_test, jnp.float32),
        **loss_metrics(z_N, flipped_N),
    }
    return metrics, z_N


def make_train(cfg: RealConfig) -> Callable[..., tuple[RealState, Metrics]]:
    """Return the pure `train(key, hp, images)` of one static configuration."""
    model = make_model(cfg)

    def train(key: jax.Array, hp: RealHParams, images: Images) -> tuple[RealState, Metrics]:
        n = images.x_train.shape[0]
        steps = n // cfg.batch_size
        k_flip, k_init, k_order = jax.random.split(key, 3)
        label_N = jnp.asarray(images.label_train)
        flipped_N = flip_labels(k_flip, label_N, hp, cfg)
        y_obs_N = jnp.where(flipped_N, 1 - label_N, label_N)
        opt = optimizer(cfg, hp, steps)
        x_eval = jnp.concatenate([jnp.asarray(images.x_train), jnp.asarray(images.x_test)])
        params, batch_stats = model.init(k_init)

        def sgd_step(state: RealState, idx_B: jax.Array) -> tuple[RealState, None]:
            x_BHWC, y_B = images.x_train[idx_B], y_obs_N[idx_B]

            def loss_fn(p):
                logits_B2, stats = model.logits(p, state.batch_stats, x_BHWC, True)
                return jnp.mean(jax.nn.softplus(-margin(logits_B2, y_B))), stats

            (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
            with jax.numpy_dtype_promotion("standard"):  # optax mixes int counters and floats
                updates, opt_state = opt.update(grads, state.opt_state, state.params)
            return state._replace(
                params=optax.apply_updates(state.params, updates),
                batch_stats=stats,
                opt_state=opt_state,
                diverged=state.diverged | ~jnp.isfinite(loss),
            ), None

        def run_epoch(state: RealState) -> RealState:
            order = jax.random.permutation(jax.random.fold_in(k_order, state.epoch), n)
            state, _ = jax.lax.scan(
                sgd_step, state, order[: steps * cfg.batch_size].reshape(steps, -1)
            )
            return state._replace(epoch=state.epoch + 1)

        def epoch_block(state: RealState, index: jax.Array) -> tuple[RealState, Metrics]:
            # Block 0 trains nothing: the initialization is measured by the same code.
            state = jax.lax.cond(index == 0, lambda s: s, run_epoch, state)
            metrics, z_N = measure(model, state, x_eval, images, y_obs_N, flipped_N, cfg)
            stages = observe(state.stages, snapshot_of(state), z_N, metrics["test_err"], metrics)
            state = state._replace(stages=stages, loss=jax.nn.softplus(-z_N))
            return state, {"epoch": state.epoch, **metrics}

        with jax.numpy_dtype_promotion("standard"):
            opt_state = opt.init(params)
        state0 = RealState(
            params,
            batch_stats,
            opt_state,
            jnp.zeros((), jnp.int32),
            None,
            jnp.bool_(False),
            flipped_N,
            jnp.zeros(n, jnp.float32),
        )
        state0 = state0._replace(stages=init_stages(snapshot_of(state0), cfg.snapshot_stages))
        state, metrics = jax.lax.scan(
            epoch_block, state0, jnp.arange(cfg.epochs + 1, dtype=jnp.int32)
        )
        final = {
            **summary(state.stages),
            **flip_rates(flipped_N, label_N == 1, jnp.ones(n, bool), jnp.float32),
            "diverged": state.diverged,
            # Per-sample outputs (a `sample` axis in results.nc): the flip mask is kept.
            "sample_flipped": flipped_N,
            "sample_loss_final": state.loss,
        }
        return state, {**metrics, **final}

    return train
