"""The two-layer CNN of docs/science.md section 3.

f(W, x) = F_{+1}(W_{+1}, x) - F_{-1}(W_{-1}, x),
F_j = (1/m) sum_r [act(<w_{j,r}, x1>) + act(<w_{j,r}, x2>)]: filters shared by both patches,
second layer fixed at +-1/m, no bias. Options for Kou et al. (2023) (docs/science.md section 7): a
bias inside the activation, act(<w_{j,r}, x_p> + b_{j,r}), PyTorch's uniform initialisation, and
the second layer at 1/2 (each class logit is the sum over its filters of the mean over patches).

Params: {"w": (J, M, D)} plus {"b": (J, M)} with a bias.

Shape letters: N samples, P = 2 patches, D dimension, J = 2 output signs (index 0 is j = +1),
M filters per sign.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from noisyjax.synthetic.config import Config, HParams, Sizes

Params = dict[str, jax.Array]
SIGNS_J = (1.0, -1.0)  # j for filter group 0 and 1


def activation_pair(cfg: Config) -> tuple[Callable, Callable]:
    """(act, act') for the configured activation, with act'(0) = 0 (docs/science.md section 3)."""
    if cfg.activation == "relu":
        return (lambda z: jnp.maximum(z, 0.0)), (
            lambda z: jnp.where(z > 0, 1.0, 0.0).astype(jnp.result_type(z))
        )
    if cfg.activation == "relu_q":
        q = cfg.q
        return (
            lambda z: jnp.maximum(z, 0.0) ** q,
            lambda z: jnp.where(z > 0, q * jnp.maximum(z, 0.0) ** (q - 1.0), 0.0),
        )
    slope = cfg.leaky_slope
    return (
        lambda z: jnp.where(z > 0, z, slope * z),
        lambda z: jnp.where(z > 0, 1.0, jnp.where(z < 0, slope, 0.0)).astype(jnp.result_type(z)),
    )


def activation(cfg: Config) -> Callable[[jax.Array], jax.Array]:
    """The activation, with autodiff derivative exactly the act' of `activation_pair`."""
    act, act_prime = activation_pair(cfg)

    @jax.custom_jvp
    def f(z):
        return act(z)

    @f.defjvp
    def f_jvp(primals, tangents):
        (z,), (dz,) = primals, tangents
        return act(z), act_prime(z) * dz

    return f


def init_params(
    key: jax.Array, cfg: Config, hp: HParams | None = None, sizes: Sizes | None = None
) -> Params:
    """Initial filters (and biases), each filter from its own key (padding over d is exact).

    "gaussian": w_{j,r} ~ N(0, sigma_0^2 I_d), no bias unless cfg.bias (then b = 0).
    "torch": PyTorch's default for Conv1d(1, 2m, kernel_size=d): weights and biases uniform in
    [-1/sqrt(fan_in), 1/sqrt(fan_in)] with fan_in = d.
    """
    hp = HParams() if hp is None else hp
    sizes = Sizes.full(cfg) if sizes is None else sizes
    dtype = cfg.float_dtype
    d_mask_D = jnp.arange(cfg.d, dtype=jnp.int32) < sizes.d
    bound = jax.lax.rsqrt(jnp.asarray(sizes.d, dtype))

    def one(j: jax.Array, r: jax.Array) -> tuple[jax.Array, jax.Array]:
        k_w = jax.random.fold_in(jax.random.fold_in(key, j), r)
        k_b = jax.random.fold_in(k_w, 1)
        if cfg.init == "torch":
            w_D = jax.random.uniform(k_w, (cfg.d,), dtype, -1.0, 1.0) * bound
            return w_D, jax.random.uniform(k_b, (), dtype, -1.0, 1.0) * bound
        return jnp.asarray(hp.sigma_0, dtype) * jax.random.normal(k_w, (cfg.d,), dtype), jnp.zeros(
            (), dtype
        )

    j_J, r_M = jnp.arange(2, dtype=jnp.uint32), jnp.arange(cfg.m, dtype=jnp.uint32)
    w_JMD, b_JM = jax.vmap(lambda j: jax.vmap(lambda r: one(j, r))(r_M))(j_J)
    params = {"w": jnp.where(d_mask_D, w_JMD, 0.0)}
    if cfg.bias:
        params["b"] = b_JM
    return params


def preactivations(params: Params, x_NPD: jax.Array) -> jax.Array:
    """<w_{j,r}, x_p> (+ b_{j,r}) for every sample, patch, sign and filter: (N, P, J, M)."""
    pre_NPJM = jnp.einsum("jmd,npd->npjm", params["w"], x_NPD)
    return pre_NPJM + params["b"][None, None] if "b" in params else pre_NPJM


def output(pre_NPJM: jax.Array, cfg: Config) -> jax.Array:
    """f from pre-activations: sum over patches and filters, times the second-layer weight
    (1/m, or 1/2 for Kou et al.), signed difference over j."""
    h_NPJM = activation(cfg)(pre_NPJM)
    signs_J = jnp.asarray(SIGNS_J, pre_NPJM.dtype)
    return second_layer(jnp.einsum("npjm,j->n", h_NPJM, signs_J), cfg)


def second_layer(v: jax.Array, cfg: Config) -> jax.Array:
    """v times the second-layer weight magnitude, 1/m (the paper) or 1/2 (Kou et al.)."""
    return v / cfg.m if cfg.output_scale == "paper" else v * 0.5


def apply(params: Params, x_NPD: jax.Array, cfg: Config | None = None) -> jax.Array:
    """The network output f(W, x) for each sample: (N,)."""
    cfg = Config() if cfg is None else cfg
    return output(preactivations(params, x_NPD), cfg)
