"""The wishart engine: a run sampled in the span it acts on (Bartlett-decomposed Wishart Gram
matrices), then stepped exactly like gram (`noisyjax.synthetic.engines.gram`).

Everything the network computes is an inner product between the signal direction u, the initial
filters w_{j,r}(0), the training noise xi_i and test or validation noise, and GD keeps W(t) in
span{u, w(0), xi} (docs/science.md section 9). So it is enough to draw these vectors' coordinates in
an orthonormal basis of that span (dimension D' = 1 + 2m + n, `Config.reduced_d`) with the
right joint law; the dynamics are then exactly those of a run in R^d, and no d-dimensional array
is drawn. Layout of the coordinates:

  column 0            u, the signal direction (mu = ||mu|| e_0)
  columns 1 .. 2m     the part of the filters orthogonal to u
  columns 2m+1 ..     one column per training sample: the part of xi_i orthogonal to all above

Gaussian filters (the paper): the 2m filters orthogonal to u and the n noise vectors are i.i.d.
Gaussian in the (d - 1)-dimensional complement of u, so their Gram matrix is Wishart with d - 1
degrees of freedom. Gram-Schmidt in order gives its Bartlett factor: row i has i.i.d. N(0, 1)
entries on the earlier directions and sqrt(chi^2(df - i)) on its own new direction (zero when
df <= i: the span is already full). Filters along u are N(0, sigma_0^2); noise along u is 0
(orthogonal noise) or N(0, sigma_p^2) (isotropic).
PyTorch's uniform filters (Kou et al.) are not rotation invariant: they are drawn in R^d and put
in coordinates by a QR decomposition of [u; W(0)] (cost O(d m^2) once); the noise, Gaussian, is
drawn around them as above with d - 1 - 2m degrees of freedom left.
Test and validation noise only matters through its projection on the span: i.i.d. N(0,
sigma_p^2) coordinates (0 along u for orthogonal noise).

Labels and flips come from the same keys as on the dense engine; only the noise differs, in
realization, not in law. Shape letters: N samples, J signs, M filters, E = D' coordinates.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from noisyjax.synthetic.config import Config, HParams, Sizes
from noisyjax.synthetic.data import (
    Batch,
    active_mask,
    assemble,
    labels_and_flips,
    noise_keys,
    sample_keys,
    signal_direction,
    split_keys,
)
from noisyjax.synthetic.engines import gram
from noisyjax.synthetic.engines.dense import Memory, Run
from noisyjax.synthetic.model import init_params


def bartlett_row(key: jax.Array, i: jax.Array, df: jax.Array, width: int, dtype) -> jax.Array:
    """Row i of the Bartlett factor L (Wishart(df, I) = L L^T) of `width` columns.

    L_ij ~ N(0, 1) for j < min(i, df), L_ii = sqrt(chi^2(df - i)) when i < df, 0 elsewhere.
    """
    k_below, k_diag = jax.random.split(key)
    i = jnp.asarray(i, dtype)
    j_E = jnp.arange(width, dtype=dtype)
    below_E = jax.random.normal(k_below, (width,), dtype)
    alive = i < df  # the row still brings a new direction
    shape = jnp.where(alive, (df - i) / 2.0, 1.0)
    diag = jnp.sqrt(2.0 * jax.random.gamma(k_diag, shape, dtype=dtype))
    row_E = jnp.where((j_E < i) & (j_E < df), below_E, 0.0)
    return jnp.where((j_E == i) & alive, diag, row_E)


def filter_coordinates(
    key: jax.Array, cfg: Config, hp: HParams, sizes: Sizes, k_signal: jax.Array
) -> tuple[jax.Array, jax.Array | None]:
    """Initial filters in the first 1 + 2m coordinates: (J, M, 1 + 2m), and biases if any."""
    dtype = cfg.float_dtype
    two_m = 2 * cfg.m
    if cfg.init == "torch":
        params = init_params(key, cfg, hp, sizes)
        d_mask_D = jnp.arange(cfg.d, dtype=jnp.int32) < sizes.d
        u_D = signal_direction(k_signal, cfg, d_mask_D)  # the dense engine's u
        rows_FD = jnp.concatenate([u_D[None], params["w"].reshape(two_m, cfg.d)], axis=0)
        _, r_FF = jnp.linalg.qr(rows_FD.T)  # rows_FD = R^T Q^T: R^T holds the coordinates
        coords_FF = r_FF.T * jnp.sign(jnp.diagonal(r_FF))[None, :]  # u -> +e_0
        return coords_FF[1:].reshape(2, cfg.m, two_m + 1), params.get("b")
    df = jnp.asarray(sizes.d, dtype) - 1.0

    def one(j: jax.Array, r: jax.Array) -> jax.Array:
        k = jax.random.fold_in(jax.random.fold_in(key, j), r)
        k_u, k_rest = jax.random.split(k)
        i = j.astype(jnp.int32) * cfg.m + r.astype(jnp.int32)
        along_u = jax.random.normal(k_u, (1,), dtype)
        return jnp.concatenate([along_u, bartlett_row(k_rest, i, df, two_m, dtype)])

    j_J, r_M = jnp.arange(2, dtype=jnp.uint32), jnp.arange(cfg.m, dtype=jnp.uint32)
    g_JME = jax.vmap(lambda j: jax.vmap(lambda r: one(j, r))(r_M))(j_J)
    bias = jnp.zeros((2, cfg.m), dtype) if cfg.bias else None
    return jnp.asarray(hp.sigma_0, dtype) * g_JME, bias


def noise_coordinates(key: jax.Array, cfg: Config, hp: HParams, sizes: Sizes, split: str) -> Batch:
    """The training, test or validation set with noise in the reduced coordinates (N, 2, E)."""
    dtype = cfg.float_dtype
    two_m, width = 2 * cfg.m, cfg.reduced_d
    keys_N = sample_keys(key, cfg, split)
    mask_N = active_mask(cfg, split, sizes)
    y_N, flipped_N = labels_and_flips(keys_N, mask_N, cfg, hp)
    d = jnp.asarray(sizes.d, dtype)
    df_own = d - 1.0 - two_m  # directions left for the noise once u and the filters are spanned
    n_active = sizes.n

    def one(k: jax.Array, i: jax.Array) -> jax.Array:
        k_u, k_filters, k_own = jax.random.split(k, 3)
        along_u = jax.random.normal(k_u, (1,), dtype)
        if cfg.noise == "orthogonal":
            along_u = jnp.zeros_like(along_u)
        on_filters = jax.random.normal(k_filters, (two_m,), dtype)
        if split == "train":
            own = bartlett_row(k_own, i, df_own, cfg.n, dtype)
        else:  # a fresh vector projected on the span: i.i.d. on every direction that exists
            j_N = jnp.arange(cfg.n, dtype=jnp.int32)
            live = (j_N < n_active) & (j_N.astype(dtype) < df_own)
            own = jnp.where(live, jax.random.normal(k_own, (cfg.n,), dtype), 0.0)
        row = jnp.concatenate([along_u, on_filters, own])
        assert row.shape == (width,)
        return row

    index_N = jnp.arange(keys_N.shape[0], dtype=jnp.int32)
    xi_NE = jnp.asarray(hp.sigma_p, dtype) * jax.vmap(one)(noise_keys(keys_N), index_N)
    mu_E = jnp.zeros(width, dtype).at[0].set(jnp.asarray(hp.mu_norm, dtype))
    return assemble(xi_NE, mu_E, y_N, flipped_N, mask_N)


def sample_run(
    k_data: jax.Array,
    k_init: jax.Array,
    cfg: Config,
    hp: HParams,
    sizes: Sizes | None = None,
) -> Run:
    """Initial filters and the training, test and validation sets in the reduced coordinates."""
    sizes = Sizes.full(cfg) if sizes is None else sizes
    w_JMF, b_JM = filter_coordinates(k_init, cfg, hp, sizes, split_keys(k_data)[0])
    pad = cfg.reduced_d - w_JMF.shape[-1]
    params = {"w": jnp.pad(w_JMF, ((0, 0), (0, 0), (0, pad)))}
    if b_JM is not None:
        params["b"] = b_JM
    train = noise_coordinates(k_data, cfg, hp, sizes, "train")
    test = noise_coordinates(k_data, cfg, hp, sizes, "test")
    val = noise_coordinates(k_data, cfg, hp, sizes, "val") if cfg.n_val else None
    return params, train, test, val


def memory(cfg: Config) -> Memory:
    """Samples drawn in D' = 1 + 2m + n dimensions, then the gram engine's terms."""
    return gram.memory(cfg)._replace(d_data=cfg.reduced_d)
