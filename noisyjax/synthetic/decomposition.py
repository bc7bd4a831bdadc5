"""The signal-noise decomposition of the filters (docs/science.md section 4).

w_{j,r}(t) = w_{j,r}(0) + j gamma_{j,r}(t) mu/||mu||^2 + sum_i rho_{j,r,i}(t) xi_i/||xi_i||^2.

Under (minibatch) gradient descent every step moves W inside span{mu, xi_i}, so the coefficients
follow exact recursions read off the step's coordinates in that basis; other optimizers leave the
span and get the least-squares projection of their update instead.

Shape letters: N samples, P patches, D dimension, J = 2 signs, M filters, K = N + 1 basis vectors.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from noisyjax.synthetic.config import Config
from noisyjax.synthetic.data import Batch
from noisyjax.synthetic.engines import AnyBatch, get
from noisyjax.synthetic.model import SIGNS_J


class Geometry(NamedTuple):
    """Per-run constants of the decomposition, computed once from the training set."""

    mu_norm2: jax.Array  # ||mu||^2
    xi_norm2_N: jax.Array  # ||xi_i||^2 (1 on padding samples, whose xi is 0)
    xi_gram_NN: jax.Array  # <xi_i, xi_k>
    mu_xi_N: jax.Array  # <mu, xi_i> (0 for orthogonal noise)
    basis_KD: jax.Array | None  # [mu/||mu||^2; xi_i/||xi_i||^2], only for projected optimizers
    basis_chol_KK: jax.Array | None  # Cholesky factor of the basis Gram matrix


def geometry(train: AnyBatch, cfg: Config) -> Geometry:
    """Norms and Gram matrices that the coefficient updates and gradient norms need, from a
    training set as the engine of `cfg` prepared it."""
    mu_norm2, gram_NN, mu_xi_N = get(cfg.step_engine).train_grams(train)
    xi_norm2_N = jnp.where(train.mask, jnp.diagonal(gram_NN), 1.0)
    basis_KD = basis_chol_KK = None
    if not cfg.exact_recursion:  # projected optimizers run on the dense engine only
        b_ND = train.x[:, 1] / xi_norm2_N[:, None]
        b0_D = jnp.where(mu_norm2 > 0, train.mu / jnp.where(mu_norm2 > 0, mu_norm2, 1.0), 0.0)
        basis_KD = jnp.concatenate([b0_D[None], b_ND], axis=0)
        # Rows that are zero (padding, or mu = 0) get a unit diagonal so the factor exists.
        empty_K = jnp.concatenate([(mu_norm2 == 0)[None], ~train.mask])
        gram_KK = basis_KD @ basis_KD.T + jnp.diag(empty_K.astype(basis_KD.dtype))
        basis_chol_KK = jnp.linalg.cholesky(gram_KK)
    return Geometry(mu_norm2, xi_norm2_N, gram_NN, mu_xi_N, basis_KD, basis_chol_KK)


def coefficient_increments(update_JMK: jax.Array, geom: Geometry) -> tuple[jax.Array, jax.Array]:
    """(d gamma (J, M), d rho (J, M, N)) of a step that moves W by update . [mu; xi_1..xi_N].

    With w = w(0) + j gamma mu/||mu||^2 + sum_i rho_i xi_i/||xi_i||^2, the coordinate along mu
    is j gamma / ||mu||^2 and along xi_i it is rho_i / ||xi_i||^2. A GD step's coordinates are
    -eta times d loss / d <w, x_p> summed over the samples (`noisyjax.synthetic.engines.forward`),
    which
    is the recursion of docs/science.md section 4:
      gamma_{j,r} -= eta/(n m) sum_i l'_i act'(<w_{j,r}, y_i mu>) y_obs_i y_i ||mu||^2
      rho_{j,r,i} -= eta/(n m) l'_i act'(<w_{j,r}, xi_i>) j y_obs_i ||xi_i||^2
    """
    signs_J = jnp.asarray(SIGNS_J, update_JMK.dtype)
    dgamma_JM = signs_J[:, None] * geom.mu_norm2 * update_JMK[..., 0]
    return dgamma_JM, geom.xi_norm2_N[None, None] * update_JMK[..., 1:]


def from_coordinates(
    c_JMK: jax.Array, geom: Geometry, y_obs_N: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(gamma, rho_bar, rho_under) of filters W(0) + C V trained with fixed labels y_obs.

    Under (minibatch) GD with fixed labels every increment of rho_{j,r,i} has the sign of
    j y_obs_i (l' < 0, act' >= 0), so rho_bar is rho where j = y_obs_i and rho_under the rest.
    """
    gamma_JM, rho_JMN = coefficient_increments(c_JMK, geom)
    signs_J = jnp.asarray(SIGNS_J, c_JMK.dtype)
    own_JN = (signs_J[:, None] * y_obs_N[None, :]) > 0
    rho_bar_JMN = jnp.where(own_JN[:, None], rho_JMN, 0.0)
    return gamma_JM, rho_bar_JMN, jnp.where(own_JN[:, None], 0.0, rho_JMN)


def projected_coordinates(update_JMD: jax.Array, geom: Geometry) -> jax.Array:
    """Least-squares coordinates in [mu; xi_1..xi_N] of an update that leaves the span (Adam)."""
    rhs_JMK = jnp.einsum("kd,jmd->jmk", geom.basis_KD, update_JMD)
    coef_JMK = jax.vmap(
        jax.vmap(lambda b: jax.scipy.linalg.cho_solve((geom.basis_chol_KK, True), b))
    )(rhs_JMK)
    # The basis rows are mu/||mu||^2 and xi_i/||xi_i||^2; a zero row (mu = 0) has coefficient 0.
    mu_norm2 = jnp.where(geom.mu_norm2 > 0, geom.mu_norm2, 1.0)
    scale_K = jnp.concatenate([mu_norm2[None], geom.xi_norm2_N])
    return coef_JMK / scale_K[None, None]


def step_norms(
    update_JMK: jax.Array, geom: Geometry, moved_JMK: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """Frobenius norms of the signal part (along mu) and noise part (in span xi) of a step that
    moves W by update . [mu; xi_1..xi_N].

    The noise part of filter (j, r) is v = sum_i u_i xi_i and ||v||^2 a quadratic form in the
    noise Gram matrix, O(m n^2). When the step's move of the projections P = <W, [mu; xi]> is at
    hand (gram engine), <v, xi_k> = dP_k - u_0 <mu, xi_k> and the form costs O(m n).
    """
    u0_JM, u_JMN = update_JMK[..., 0], update_JMK[..., 1:]
    signal = jnp.sqrt(geom.mu_norm2 * jnp.sum(u0_JM**2))
    if moved_JMK is None:
        noise2 = jnp.einsum("jmn,nk,jmk->", u_JMN, geom.xi_gram_NN, u_JMN)
    else:
        v_xi_JMN = moved_JMK[..., 1:] - u0_JM[..., None] * geom.mu_xi_N[None, None]
        noise2 = jnp.sum(u_JMN * v_xi_JMN)
    return signal, jnp.sqrt(jnp.maximum(noise2, 0.0))


def rebuild_displacement(
    gamma_JM: jax.Array, rho_JMN: jax.Array, train: Batch, geom: Geometry
) -> jax.Array:
    """W(t) - W(0) from the coefficients: j gamma mu/||mu||^2 + sum_i rho_i xi_i/||xi_i||^2."""
    signs_J = jnp.asarray(SIGNS_J, gamma_JM.dtype)
    b0_D = train.mu / jnp.where(geom.mu_norm2 > 0, geom.mu_norm2, 1.0)
    b_ND = train.x[:, 1] / geom.xi_norm2_N[:, None]
    return jnp.einsum("j,jm,d->jmd", signs_J, gamma_JM, b0_D) + jnp.einsum(
        "jmn,nd->jmd", rho_JMN, b_ND
    )


def subset_noise_norm(update_JMK: jax.Array, geom: Geometry, select_N: jax.Array) -> jax.Array:
    """Frobenius norm of the part of a step built from the selected samples' noise vectors,
    sum_{i selected} u_i xi_i (the flipped samples' share of the noise part, t_cross_flipped)."""
    u_JMN = jnp.where(select_N[None, None], update_JMK[..., 1:], 0.0)
    noise2 = jnp.einsum("jmn,nk,jmk->", u_JMN, geom.xi_gram_NN, u_JMN)
    return jnp.sqrt(jnp.maximum(noise2, 0.0))
