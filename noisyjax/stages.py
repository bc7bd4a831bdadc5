"""Stage transitions detected inside the compiled run (SCIENCE.md section 5).

Checked at every step t on the state W(t) before the step is taken (and once on the final state):
  t1      first step with every clean sample fitted (margin y_obs f > 0): end of Stage I;
  t2      first step with every training sample fitted: end of Stage II;
  t_best  step of the lowest true-label test error (test error evaluated every `eval_every`
          steps and at every logged step; with the default 1 this is exact), the oracle
          early-stopping point;
  t_cross first step whose update has a noise part (in span{xi_i}) larger in norm than its
          signal part (along mu).
A transition that never happens is reported as NEVER (-1). "Stage I exists" when at t1 at least
90% of the flipped samples still have loss > log 2; never when there is no flipped sample.

Snapshots (weights and the gamma/rho state) at each transition are held in the scan carry, so
they survive vmap and need no host callback.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from noisyjax.config import TRANSITION_NAMES, Config
from noisyjax.decomposition import Geometry
from noisyjax.engines import AnyBatch
from noisyjax.metrics import LOG2, auroc, masked_mean

NEVER = -1
TRANSITIONS = TRANSITION_NAMES
STAGE_ONE_FRACTION = 0.9
PROBES = (
    "train_acc_noisy",
    "frac_noisy_above_log2",
    "frac_clean_below_log2",
    "loss_auroc",
    "gamma_max",
    "rho_bar_noisy",
    "test_err",
)


class Snapshot(NamedTuple):
    """What defines a run at one step: its trainable parameters and the decomposition.

    `w` is the filters W (J, M, D) on the dense engine and the coefficients C (J, M, N + 1) of
    W = W(0) + C [mu; xi_1..xi_N] on the gram and wishart engines (`noisyjax.engines`); `b` is
    the bias (zero without one). Inside the loop gamma and rho are None where the training state
    does not carry them; `noisyjax.train.fit` fills them in from C.
    """

    w: jax.Array  # (J, M, D) or (J, M, K)
    b: jax.Array  # (J, M)
    gamma: jax.Array | None  # (J, M)
    rho_bar: jax.Array | None  # (J, M, N)
    rho_under: jax.Array | None  # (J, M, N)
    step: jax.Array  # () int32


class Stages(NamedTuple):
    """Transition times, the probe values at each, and the requested snapshots."""

    times: dict[str, jax.Array]  # name -> () int32, NEVER until it happens
    probes: dict[str, dict[str, jax.Array]]  # name -> probe values at that time
    test_err: jax.Array  # the latest evaluated test error
    best_test_err: jax.Array
    snapshots: dict[str, Snapshot]  # for the transitions in cfg.snapshot_stages


def snapshot_of(state) -> Snapshot:
    params = state.params
    w = params["w"] if "w" in params else params["c"]
    b = params["b"] if "b" in params else jnp.zeros(w.shape[:2], w.dtype)
    return Snapshot(w, b, state.gamma, state.rho_bar, state.rho_under, state.step)


def init_stages(state, cfg: Config, train: AnyBatch) -> Stages:
    dtype = train.y.dtype
    never = jnp.asarray(NEVER, jnp.int32)
    nan = jnp.asarray(jnp.nan, dtype)
    losses_N = jnp.full(train.y.shape, jnp.nan, dtype)
    return Stages(
        times={t: never for t in TRANSITIONS},
        probes={
            t: {**{p: nan for p in PROBES if p != "loss_auroc"}, "losses": losses_N}
            for t in TRANSITIONS
        },
        test_err=nan,
        best_test_err=jnp.asarray(jnp.inf, dtype),
        snapshots={
            t: snapshot_of(state)._replace(step=never)
            for t in TRANSITIONS
            if t in cfg.snapshot_stages
        },
    )


def probe(
    gamma_JM: jax.Array,
    rho_bar_JMN: jax.Array,
    z_N: jax.Array,
    train: AnyBatch,
    test_err: jax.Array,
) -> dict[str, jax.Array]:
    """The cheap per-step quantities recorded at a transition."""
    loss_N = jax.nn.softplus(-z_N)
    clean_N = train.mask & ~train.flipped
    noisy_N = train.mask & train.flipped
    rho_bar_JN = jnp.max(rho_bar_JMN, axis=1)
    own_N = jnp.where(train.y_obs > 0, rho_bar_JN[0], rho_bar_JN[1])
    dtype = z_N.dtype
    return {
        "train_acc_noisy": masked_mean((z_N > 0).astype(dtype), noisy_N),
        "frac_noisy_above_log2": masked_mean((loss_N > LOG2).astype(dtype), noisy_N),
        "frac_clean_below_log2": masked_mean((loss_N < LOG2).astype(dtype), clean_N),
        "losses": loss_N,  # the AUROC is taken from them once, in `summary`
        "gamma_max": jnp.max(gamma_JM),
        "rho_bar_noisy": masked_mean(own_N, noisy_N),
        "test_err": test_err,
    }


def observe(
    stages: Stages,
    state,
    z_N: jax.Array,
    test_err: jax.Array | None,
    noise_over_signal: jax.Array | None,
    train: AnyBatch,
    geom: Geometry,
) -> Stages:
    """Update the transitions with the state W(t) (margins z_N = y_obs f, step = state.step).

    `test_err` is the latest evaluated test error (it may be up to eval_every - 1 steps old, and
    so are the `test_err` probes); `noise_over_signal` is None on the final state, from which no
    step is taken.
    """
    t = state.step
    fitted_N = (z_N > 0) | ~train.mask
    hits = {
        "t1": jnp.all(fitted_N | train.flipped),
        "t2": jnp.all(fitted_N),
        "t_cross": noise_over_signal if noise_over_signal is not None else jnp.bool_(False),
    }
    new = {name: (stages.times[name] == NEVER) & hit for name, hit in hits.items()}
    new["t_best"] = test_err < stages.best_test_err  # NaN (no evaluation yet) compares False
    gamma_JM, rho_bar_JMN, _ = state.decomposition(geom, train)
    values = probe(gamma_JM, rho_bar_JMN, z_N, train, test_err)
    times = {name: jnp.where(new[name], t, stages.times[name]) for name in TRANSITIONS}
    probes = {
        name: jax.tree.map(
            lambda a, b, n=new[name]: jnp.where(n, a, b), values, stages.probes[name]
        )
        for name in TRANSITIONS
    }
    current = snapshot_of(state)
    snapshots = {
        name: jax.tree.map(lambda a, b, n=new[name]: jnp.where(n, a, b), current, snap)
        for name, snap in stages.snapshots.items()
    }
    return Stages(
        times, probes, test_err, jnp.where(new["t_best"], test_err, stages.best_test_err), snapshots
    )


def summary(stages: Stages, train: AnyBatch) -> dict[str, jax.Array]:
    """Per-run scalars for the results: transition times, probes at each, stage_one_exists."""
    out: dict[str, jax.Array] = {name: stages.times[name] for name in TRANSITIONS}
    clean_N, noisy_N = train.mask & ~train.flipped, train.mask & train.flipped
    for name in TRANSITIONS:
        probes = dict(stages.probes[name])
        value = auroc(probes.pop("losses"), noisy_N, clean_N)
        probes["loss_auroc"] = jnp.where(stages.times[name] == NEVER, jnp.nan, value)
        for key in PROBES:
            out[f"{name}_{key}"] = probes[key]
    above = stages.probes["t1"]["frac_noisy_above_log2"]
    # NaN (no flipped sample) compares False: without label noise there is no Stage I.
    out["stage_one_exists"] = (stages.times["t1"] != NEVER) & (above >= STAGE_ONE_FRACTION)
    out["best_test_err"] = stages.best_test_err
    return out
