"""Signal-plus-noise data with flipped labels (docs/science.md section 2).

Shape letters: N samples, P = 2 patches, D dimension.

Every sample is drawn from its own key, `fold_in(split_key, i)`, so sample i does not depend on
n; with JAX's partitionable threefry a length-d normal draw is a prefix of a longer draw from the
same key, so a run padded to a larger (n, d) sees exactly the data of the unpadded run.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from noisyjax.synthetic.config import Config, HParams, Sizes

SPLITS = ("train", "test", "val")


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


def split_keys(key: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The signal key and the per-split sample keys of the data key `key`."""
    k_signal, k_train, k_test = jax.random.split(key, 3)
    # The validation split is folded in, so adding it leaves train and test draws unchanged.
    return k_signal, {"train": k_train, "test": k_test, "val": jax.random.fold_in(key, 3)}


def split_size(cfg: Config, split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is invalid: allowed " + ", ".join(map(repr, SPLITS)))
    return {"train": cfg.n, "test": cfg.n_test, "val": cfg.n_val}[split]


def sample_keys(key: jax.Array, cfg: Config, split: str) -> jax.Array:
    """One key per sample of `split`: fold_in(split key, i), so sample i does not depend on n."""
    n_total = split_size(cfg, split)
    _, keys = split_keys(key)
    return jax.vmap(jax.random.fold_in, (None, 0))(
        keys[split], jnp.arange(n_total, dtype=jnp.uint32)
    )


def labels_and_flips(
    keys_N: jax.Array, mask_N: jax.Array, cfg: Config, hp: HParams
) -> tuple[jax.Array, jax.Array]:
    """True labels y uniform on {-1, +1} and the flip mask (docs/science.md section 2), per key.

    Each sample key splits into (label, noise, flip) keys; the noise key is left to the sampler,
    so every engine draws the same labels and flips from the same keys.
    """
    dtype = cfg.float_dtype

    def one(k: jax.Array) -> tuple[jax.Array, jax.Array]:
        k_label, _, k_flip = jax.random.split(k, 3)
        y = jnp.where(jax.random.bernoulli(k_label), 1.0, -1.0).astype(dtype)
        return y, jax.random.uniform(k_flip, dtype=dtype)

    y_N, flip_u_N = jax.vmap(one)(keys_N)
    y_N = jnp.where(mask_N, y_N, 1.0)
    return y_N, flip_mask(flip_u_N, y_N, mask_N, cfg, hp) & mask_N


def noise_keys(keys_N: jax.Array) -> jax.Array:
    """The noise key of each sample key (see `labels_and_flips`)."""
    return jax.vmap(lambda k: jax.random.split(k, 3)[1])(keys_N)


def active_mask(cfg: Config, split: str, sizes: Sizes) -> jax.Array:
    """False on padding samples (only the training set is padded)."""
    n_total = split_size(cfg, split)
    if split == "train":
        return jnp.arange(n_total, dtype=jnp.int32) < sizes.n
    return jnp.ones(n_total, bool)


def assemble(
    xi_ND: jax.Array,
    mu_D: jax.Array,
    y_N: jax.Array,
    flipped_N: jax.Array,
    mask_N: jax.Array,
) -> Batch:
    """The two-patch batch x = [y mu, xi] (docs/science.md section 2), zero on padding samples."""
    x1_ND = jnp.where(mask_N[:, None], jnp.outer(y_N, mu_D), 0.0)
    xi_ND = jnp.where(mask_N[:, None], xi_ND, 0.0)
    y_obs_N = jnp.where(flipped_N, -y_N, y_N)
    return Batch(
        x=jnp.stack([x1_ND, xi_ND], axis=1),
        y=y_N,
        y_obs=y_obs_N,
        flipped=flipped_N,
        mask=mask_N,
        mu=mu_D,
    )


def sample(
    key: jax.Array, cfg: Config, hp: HParams, *, split: str = "train", sizes: Sizes | None = None
) -> Batch:
    """Draw the training set (n samples), the test set (n_test) or the validation set (n_val) of
    the data key `key`.

    All splits share the signal direction of `key` and use disjoint sample keys. Test and
    validation labels are flipped with the same tau, so errors can be taken against true or
    noisy labels.
    """
    sizes = Sizes.full(cfg) if sizes is None else sizes
    keys_N = sample_keys(key, cfg, split)
    k_signal, _ = split_keys(key)
    dtype = cfg.float_dtype
    d_mask_D = jnp.arange(cfg.d, dtype=jnp.int32) < sizes.d
    u_D = signal_direction(k_signal, cfg, d_mask_D)
    mask_N = active_mask(cfg, split, sizes)
    y_N, flipped_N = labels_and_flips(keys_N, mask_N, cfg, hp)

    def noise(k: jax.Array) -> jax.Array:
        z_D = jnp.where(d_mask_D, jax.random.normal(k, (cfg.d,), dtype), 0.0)
        if cfg.noise == "orthogonal":  # xi ~ N(0, sigma_p^2 (I - u u^T))
            z_D = z_D - jnp.dot(z_D, u_D) * u_D
        return z_D

    xi_ND = jnp.asarray(hp.sigma_p, dtype) * jax.vmap(noise)(noise_keys(keys_N))
    return assemble(xi_ND, jnp.asarray(hp.mu_norm, dtype) * u_D, y_N, flipped_N, mask_N)


def flip_mask(
    u_N: jax.Array, y_N: jax.Array, mask_N: jax.Array, cfg: Config, hp: HParams
) -> jax.Array:
    """Class-conditional flips: tau_plus for y = +1, tau_minus for y = -1 (docs/science.md s. 2).

    "bernoulli": flip sample i when u_i < tau(y_i). "exact": in each class flip the
    round(tau n_class) active samples with the smallest u_i (a uniformly random subset).
    "exact_total": the authors' CIFAR-10 code: flip the int(tau n) samples with the smallest u_i
    over the whole training set, whatever their class (for tau_plus != tau_minus, tau n is the
    expected count tau_plus n_plus + tau_minus n_minus); the per-class counts then vary.
    """
    tau_N = jnp.where(y_N > 0, hp.tau_plus, hp.tau_minus).astype(u_N.dtype)
    if cfg.flip == "bernoulli":
        return u_N < tau_N
    if cfg.flip == "exact_total":
        rank_N = jnp.sum(mask_N[None, :] & (u_N[None, :] < u_N[:, None]), axis=1)
        # int() of Python's float64 product; the 1e-3 keeps float32 sums like 59.99999 at 60.
        count = jnp.floor(jnp.sum(jnp.where(mask_N, tau_N, 0.0)) + 1e-3)
        return rank_N.astype(u_N.dtype) < count
    same_class_NN = (y_N[:, None] == y_N[None, :]) & mask_N[None, :]
    rank_N = jnp.sum(same_class_NN & (u_N[None, :] < u_N[:, None]), axis=1)
    n_class_N = jnp.sum(same_class_NN, axis=1).astype(u_N.dtype)
    return rank_N.astype(u_N.dtype) < jnp.round(tau_N * n_class_N)


def flip_rates(
    flipped_N: jax.Array, plus_N: jax.Array, mask_N: jax.Array, dtype
) -> dict[str, jax.Array]:
    """Empirical tau_plus (flipped fraction of the active class-plus samples), tau_minus (of the
    others) and overall flip rate, in `dtype`: exact counts, one division; NaN for an empty set."""

    def rate(sel_N: jax.Array) -> jax.Array:
        return jnp.sum(flipped_N & sel_N).astype(dtype) / jnp.sum(sel_N).astype(dtype)

    return {
        "tau_plus_realized": rate(mask_N & plus_N),
        "tau_minus_realized": rate(mask_N & ~plus_N),
        "flip_rate_realized": rate(mask_N),
    }


def realized_rates(batch: Batch) -> dict[str, jax.Array]:
    """Empirical tau_plus, tau_minus and overall flip rate over the active samples."""
    return flip_rates(batch.flipped, batch.y > 0, batch.mask, batch.y.dtype)
