"""The gram engine: the dense engine's data and filters, trained in coefficient space.

Params {"c": C (J, M, K), "p": P (J, M, K)} with W(t) = W(0) + C(t) V, V = [mu; xi_1..xi_N]
(K = N + 1), and P = <W, V> = A + C G, A = W(0) V^T, G = V V^T (docs/science.md section 9). Every
GD step moves W inside span V, so all the network needs is each input's projection on W(0) and on
V, computed once (`to_gram`). On the training set the pre-activations are P itself: column 0 is
<w, mu> (the signal patch y mu gives y P_0), columns 1.. are <w, xi_n>. The gradient of the loss
w.r.t. P is then the step's coordinates dC: GD moves C by -eta dC and P by -eta dC G, one
(2m x K) @ (K x K) product; no d-dimensional array is touched. Test and validation sets are read
through C (`GramBatch`), once per evaluation. Biases (Kou et al.) are the same parameter
{"b": (J, M)} as on dense. gamma and rho are read off C
(`noisyjax.synthetic.decomposition.from_coordinates`)
instead of accumulated.

The arrays keep the sample axis last, (J, M, N), so a step has no transposes, and the signal patch
is evaluated once per label value (y = +1, -1, and 0 on padding), not per sample.

Shape letters: N samples, D dimension, J = 2 signs, M filters, K = N + 1 basis vectors,
Y = 3 label values.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from noisyjax.synthetic.config import Config
from noisyjax.synthetic.data import Batch
from noisyjax.synthetic.engines.dense import Backward, Memory, Run, signal_labels
from noisyjax.synthetic.model import SIGNS_J, Params, activation, second_layer


class GramBatch(NamedTuple):
    """A data set seen through the basis V = [mu; xi_1..xi_N] of a training set and W(0).

    Samples are x = [y mu, xi]; the signal patch of every sample is y mu, so only the noise
    patch has per-sample projections.
    """

    k_KN: jax.Array  # <V_k, xi_n>
    a_JMN: jax.Array  # <w_{j,r}(0), xi_n>
    s_K: jax.Array  # <mu, V_k> = G[0]
    s0_JM: jax.Array  # <w_{j,r}(0), mu>
    y: jax.Array  # (N,) true labels
    y_obs: jax.Array  # (N,) observed labels
    flipped: jax.Array  # (N,) bool
    mask: jax.Array  # (N,) bool: False on padding samples

    def projections(self, params: Params) -> tuple[jax.Array, jax.Array]:
        """(<w_{j,r}, mu> (J, M), <w_{j,r}, xi_n> (J, M, N)), read through C."""
        c_JMK = params["c"]
        return self.s0_JM + c_JMK @ self.s_K, self.a_JMN + c_JMK @ self.k_KN


class GramBasis(NamedTuple):
    """The training set that spans V: its pre-activations are the carried projections P."""

    g_KK: jax.Array  # G = V V^T: <mu, mu>, <mu, xi_n>, <xi_i, xi_n>
    y: jax.Array
    y_obs: jax.Array
    flipped: jax.Array
    mask: jax.Array

    def projections(self, params: Params) -> tuple[jax.Array, jax.Array]:
        """(<w_{j,r}, mu> (J, M), <w_{j,r}, xi_n> (J, M, N)): the columns of P."""
        return params["p"][..., 0], params["p"][..., 1:]


def basis_vectors(train: Batch) -> jax.Array:
    """V = [mu; xi_1; ...; xi_N]: (K, D)."""
    return jnp.concatenate([train.mu[None], train.x[:, 1]], axis=0)


def to_gram(params0: Params, train: Batch, *others: Batch | None) -> tuple[Params, ...]:
    """Coefficient-space parameters (C = 0, P = A, the biases kept), the training set as a
    `GramBasis` and `others` (test, validation; None passes through) as `GramBatch`es."""
    mu_D = train.mu
    v_KD = basis_vectors(train)
    w0_JMD = params0["w"]
    s_K = v_KD @ mu_D
    s0_JM = w0_JMD @ mu_D

    def project(batch: Batch | None) -> GramBatch | None:
        if batch is None:
            return None
        xi_ND = batch.x[:, 1]
        return GramBatch(
            # The draws xi_ND are the left operand and the small results are transposed: a
            # (D, N) layout of the draws would cost a copy of the largest array of the run.
            k_KN=jnp.einsum("nd,kd->nk", xi_ND, v_KD).T,
            a_JMN=jnp.transpose(jnp.einsum("nd,jmd->njm", xi_ND, w0_JMD), (1, 2, 0)),
            s_K=s_K,
            s0_JM=s0_JM,
            y=batch.y,
            y_obs=batch.y_obs,
            flipped=batch.flipped,
            mask=batch.mask,
        )

    g_KK = jnp.einsum("kd,ld->kl", v_KD, v_KD)
    basis = GramBasis(g_KK, train.y, train.y_obs, train.flipped, train.mask)
    p_JMK = jnp.einsum("jmd,kd->jmk", w0_JMD, v_KD)  # A = <W(0), V>
    c_JMK = jnp.zeros_like(p_JMK)
    params = {"c": c_JMK, "p": p_JMK, **({"b": params0["b"]} if "b" in params0 else {})}
    return (params, basis, *(project(b) for b in others))


def prepare(params: Params, train: Batch, test: Batch, val: Batch | None) -> Run:
    """The drawn run in coefficient space: C = 0, P = A, the sets projected once (`to_gram`)."""
    return to_gram(params, train, test, val)


def gram_output(
    signal_JM: jax.Array,
    noise_JMN: jax.Array,
    y_N: jax.Array,
    b_JM: jax.Array | None,
    cfg: Config,
) -> jax.Array:
    """f(W, x) from the projections: the model's output (`noisyjax.synthetic.model.output`) with the
    signal patch x1 = y mu, whose pre-activation y <w, mu> + b takes one value per label."""
    act = activation(cfg)
    b_JM = jnp.zeros_like(signal_JM) if b_JM is None else b_JM
    signs_J = jnp.asarray(SIGNS_J, signal_JM.dtype)
    y_Y = jnp.asarray([1.0, -1.0, 0.0], signal_JM.dtype)  # padding samples are x = 0
    h_YJM = act(y_Y[:, None, None] * signal_JM[None] + b_JM[None])
    signal_Y = jnp.einsum("yjm,j->y", h_YJM, signs_J)
    signal_N = jnp.where(y_N > 0, signal_Y[0], jnp.where(y_N < 0, signal_Y[1], signal_Y[2]))
    h_JMN = act(noise_JMN + b_JM[..., None])
    noise_N = jnp.sum(h_JMN[0] - h_JMN[1], axis=0)
    return second_layer(signal_N + noise_N, cfg)


def outputs(params: Params, batch: GramBatch | GramBasis, cfg: Config) -> jax.Array:
    """The network output f(W, x) of every sample: (N,)."""
    return gram_output(*batch.projections(params), signal_labels(batch), params.get("b"), cfg)


def forward(params: Params, train: GramBasis, cfg: Config) -> tuple[jax.Array, Backward]:
    """f on the training set and `backward(df)`: the pull back of d loss / d f (N,) onto the
    parameters (a GD step is params - eta * grads, in the parameters' own coordinates) and onto
    the step's coordinates dC (J, M, K) in V (W moves by -eta dC V)."""
    f_N, vjp = jax.vjp(lambda p: outputs(p, train, cfg), params)

    def backward(df_N: jax.Array) -> tuple[Params, jax.Array]:
        (grads,) = vjp(df_N)
        dc_JMK = grads["p"]  # d loss / d P: the coordinates of the step
        # P = A + C G moves by the step times G.
        return {**grads, "c": dc_JMK, "p": dc_JMK @ train.g_KK}, dc_JMK

    return f_N, backward


def step_coordinates(updates: Params, dc_JMK: jax.Array, eta: jax.Array) -> jax.Array:
    """The coordinates u of a step in V (W moves by u V): the update of C is its own."""
    return updates["c"]


def moved_projections(updates: Params) -> jax.Array:
    """How the update moves the carried projections P = <W, V> (`step_norms` then costs
    O(m n))."""
    return updates["p"]


def filters(params: Params, params0: Params, train: Batch) -> jax.Array:
    """W(t) = W(0) + C V as (J, M, D) filters, from the drawn W(0) and training set."""
    return params0["w"] + params["c"] @ basis_vectors(train)


def train_grams(train: GramBasis) -> tuple[jax.Array, jax.Array, jax.Array]:
    """||mu||^2, the Gram matrix <xi_i, xi_k> and <mu, xi_i> of the training set: blocks of G."""
    return train.g_KK[0, 0], train.g_KK[1:, 1:], train.g_KK[0, 1:]


def memory(cfg: Config) -> Memory:
    """Samples drawn in R^d, filters moved in the K = n + 1 coefficients, every set projected."""
    n_all = cfg.n + cfg.n_test + cfg.n_val
    return Memory(d_data=cfg.d, d_step=cfg.n + 1, projections=2 * n_all * (2 * cfg.m + cfg.n + 1))
