"""The dense engine: filters W (J, M, D) in R^d, batches `noisyjax.Batch` (x in R^D).

A step costs O(m n d). Its coordinates in the basis V = [mu; xi_1; ...; xi_N] (docs/science.md
section 4's decomposition) are read off d loss / d pre-activation: the signal patch is x1 = y mu,
the noise patch x2 = xi_n. gamma and rho accumulate step by step.

Shape letters: N samples, P = 2 patches, D dimension, J = 2 signs, M filters, K = N + 1 basis
vectors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from noisyjax.synthetic.config import Config, HParams, Sizes
from noisyjax.synthetic.data import Batch, sample
from noisyjax.synthetic.model import Params, init_params, output, preactivations

Backward = Callable[[jax.Array], tuple[Params, jax.Array]]
Run = tuple[Params, Batch, Batch, Batch | None]


class Memory(NamedTuple):
    """The engine-specific terms of a run's memory model
    (`noisyjax.synthetic.experiment.bytes_per_run`)."""

    d_data: int  # dimension the samples are drawn in
    d_step: int  # dimension the filters move in: W (J, M, d_step)
    projections: int  # floats of the per-set projections on W(0) and V (0: none)


def sample_run(
    k_data: jax.Array, k_init: jax.Array, cfg: Config, hp: HParams, sizes: Sizes | None = None
) -> Run:
    """Initial filters and the training, test and validation sets (None without n_val) in R^d."""
    splits = ("train", "test", "val") if cfg.n_val else ("train", "test")
    train, test, *val = (sample(k_data, cfg, hp, split=s, sizes=sizes) for s in splits)
    return init_params(k_init, cfg, hp, sizes), train, test, (val[0] if val else None)


def prepare(params: Params, train: Batch, test: Batch, val: Batch | None) -> Run:
    """The dense engine trains on the drawn arrays themselves."""
    return params, train, test, val


def signal_labels(batch) -> jax.Array:
    """y of every sample, 0 on padding samples: the signal patch x1 = y mu is 0 there, as x is."""
    return jnp.where(batch.mask, batch.y, 0.0)


def outputs(params: Params, batch: Batch, cfg: Config) -> jax.Array:
    """The network output f(W, x) of every sample: (N,)."""
    return output(preactivations(params, batch.x), cfg)


def forward(params: Params, train: Batch, cfg: Config) -> tuple[jax.Array, Backward]:
    """f on the training set and `backward(df)`: the pull back of d loss / d f (N,) onto the
    parameters and onto the step's coordinates dC (J, M, K) in V = [mu; xi_1..xi_N]."""
    pre_NPJM, pre_vjp = jax.vjp(lambda p: preactivations(p, train.x), params)
    f_N, output_vjp = jax.vjp(lambda pre: output(pre, cfg), pre_NPJM)

    def backward(df_N: jax.Array) -> tuple[Params, jax.Array]:
        (dpre_NPJM,) = output_vjp(df_N)
        (grads,) = pre_vjp(dpre_NPJM)
        dsignal_JM = jnp.einsum("njm,n->jm", dpre_NPJM[:, 0], signal_labels(train))  # x1 = y mu
        dnoise_JMN = jnp.transpose(dpre_NPJM[:, 1], (1, 2, 0))  # x2 = xi_n
        return grads, jnp.concatenate([dsignal_JM[..., None], dnoise_JMN], axis=-1)

    return f_N, backward


def step_coordinates(updates: Params, dc_JMK: jax.Array, eta: jax.Array) -> jax.Array:
    """The coordinates u of a (minibatch) GD step in V (W moves by u V): -eta times the
    gradient's (docs/science.md section 4)."""
    return -eta * dc_JMK


def moved_projections(updates: Params) -> None:
    """The dense engine carries no projections on V (`step_norms` uses the noise Gram matrix)."""
    return None


def filters(params: Params, params0: Params, train: Batch) -> jax.Array:
    """W(t) as (J, M, D) filters: the parameters themselves."""
    return params["w"]


def train_grams(train: Batch) -> tuple[jax.Array, jax.Array, jax.Array]:
    """||mu||^2, the Gram matrix <xi_i, xi_k> and <mu, xi_i> of the training set."""
    xi_ND = train.x[:, 1]
    return jnp.dot(train.mu, train.mu), xi_ND @ xi_ND.T, xi_ND @ train.mu


def memory(cfg: Config) -> Memory:
    """Samples drawn and filters moved in R^d; no projections."""
    return Memory(d_data=cfg.d, d_step=cfg.d, projections=0)
