"""Signal-plus-noise data with flipped labels (SCIENCE.md section 2).

Shape letters: N samples, P = 2 patches, D dimension.

Every sample is drawn from its own key, `fold_in(split_key, i)`, so sample i does not depend on
n; with JAX's partitionable threefry a length-d normal draw is a prefix of a longer draw from the
same key, so a run padded to a larger (n, d) sees exactly the data of the unpadded run.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from noisyjax.config import Config, HParams, Sizes

SPLITS = ("train", "test")


class Batch(NamedTuple):
    """A data set: patches, true and observed labels, the flip mask and the active-sample mask."""

    x: jax.Array  # (N, P, D): x[:, 0] = y mu, x[:, 1] = xi
    y: jax.Array  # (N,) true labels in {-1, +1}, float
    y_obs: jax.Array  # (N,) observed labels in {-1, +1}, float
    flipped: jax.Array  # (N,) bool: y_obs != y
    mask: jax.Array  # (N,) bool: False on padding samples
    mu: jax.Array  # (D,) the signal vector


def signal_direction(key: jax.Array, cfg: Config, d_mask_D: jax.Array) -> jax.Array:
    """Unit vector u with mu = ||mu|| u: e_1, or a uniformly random direction in the active dims."""
    dtype = cfg.float_dtype
    if cfg.signal == "e1":
        return jnp.zeros(cfg.d, dtype).at[0].set(1.0)
    g_D = jnp.where(d_mask_D, jax.random.normal(key, (cfg.d,), dtype), 0.0)
    return g_D / jnp.linalg.norm(g_D)


def sample(
    key: jax.Array, cfg: Config, hp: HParams, *, split: str = "train", sizes: Sizes | None = None
) -> Batch:
    """Draw the training set (n samples) or the test set (n_test samples) of the data key `key`.

    Train and test share the signal direction of `key` and use disjoint sample keys. Test labels
    are flipped with the same tau, so errors can be taken against true or noisy labels.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is invalid: allowed 'train', 'test'")
    sizes = Sizes.full(cfg) if sizes is None else sizes
    k_signal, k_train, k_test = jax.random.split(key, 3)
    dtype = cfg.float_dtype
    d_mask_D = jnp.arange(cfg.d, dtype=jnp.int32) < sizes.d
    u_D = signal_direction(k_signal, cfg, d_mask_D)
    n_total = cfg.n if split == "train" else cfg.n_test
    mask_N = (
        jnp.arange(n_total, dtype=jnp.int32) < sizes.n
        if split == "train"
        else jnp.ones(n_total, bool)
    )
    k_split = k_train if split == "train" else k_test
    keys_N = jax.vmap(jax.random.fold_in, (None, 0))(k_split, jnp.arange(n_total, dtype=jnp.uint32))

    def one(k: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        k_label, k_noise, k_flip = jax.random.split(k, 3)
        y = jnp.where(jax.random.bernoulli(k_label), 1.0, -1.0).astype(dtype)
        z_D = jnp.where(d_mask_D, jax.random.normal(k_noise, (cfg.d,), dtype), 0.0)
        if cfg.noise == "orthogonal":  # xi ~ N(0, sigma_p^2 (I - u u^T))
            z_D = z_D - jnp.dot(z_D, u_D) * u_D
        return y, z_D, jax.random.uniform(k_flip, dtype=dtype)

    y_N, z_ND, flip_u_N = jax.vmap(one)(keys_N)
    y_N = jnp.where(mask_N, y_N, 1.0)
    flipped_N = flip_mask(flip_u_N, y_N, mask_N, cfg, hp) & mask_N
    xi_ND = jnp.where(mask_N[:, None], jnp.asarray(hp.sigma_p, dtype) * z_ND, 0.0)
    mu_D = jnp.asarray(hp.mu_norm, dtype) * u_D
    x1_ND = jnp.where(mask_N[:, None], jnp.outer(y_N, mu_D), 0.0)
    x_NPD = jnp.stack([x1_ND, xi_ND], axis=1)
    y_obs_N = jnp.where(flipped_N, -y_N, y_N)
    return Batch(x=x_NPD, y=y_N, y_obs=y_obs_N, flipped=flipped_N, mask=mask_N, mu=mu_D)


def flip_mask(
    u_N: jax.Array, y_N: jax.Array, mask_N: jax.Array, cfg: Config, hp: HParams
) -> jax.Array:
    """Class-conditional flips: tau_plus for y = +1, tau_minus for y = -1 (SCIENCE.md section 2).

    "bernoulli": flip sample i when u_i < tau(y_i). "exact": in each class flip the
    round(tau n_class) active samples with the smallest u_i (a uniformly random subset).
    """
    tau_N = jnp.where(y_N > 0, hp.tau_plus, hp.tau_minus).astype(u_N.dtype)
    if cfg.flip == "bernoulli":
        return u_N < tau_N
    same_class_NN = (y_N[:, None] == y_N[None, :]) & mask_N[None, :]
    rank_N = jnp.sum(same_class_NN & (u_N[None, :] < u_N[:, None]), axis=1)
    n_class_N = jnp.sum(same_class_NN, axis=1).astype(u_N.dtype)
    return rank_N.astype(u_N.dtype) < jnp.round(tau_N * n_class_N)


def realized_rates(batch: Batch) -> dict[str, jax.Array]:
    """Empirical tau_plus, tau_minus and overall flip rate over the active samples."""

    def rate(sel_N: jax.Array) -> jax.Array:
        dtype = batch.y.dtype
        return jnp.sum(batch.flipped & sel_N).astype(dtype) / jnp.sum(sel_N).astype(dtype)

    return {
        "tau_plus_realized": rate(batch.mask & (batch.y > 0)),
        "tau_minus_realized": rate(batch.mask & (batch.y < 0)),
        "flip_rate_realized": rate(batch.mask),
    }
