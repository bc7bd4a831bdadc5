"""Stage markers of a deep network, checked once per epoch (docs/stages.md).

The definitions and names are those of `noisyjax.synthetic.stages`, with the epoch as the time unit
(epoch 0 is the initialization):
  t1              first epoch whose end state fits every clean training sample;
  t_stage1        t1's condition with >= 90% of the flipped samples at loss > log 2: the start
                  of the Stage-I window; t_memorize: the first later epoch below 90%, its end;
  t_half_flipped  half of the flipped samples fitted to their observed label, at or after t1;
  t2              every training sample fitted;
  t_best          epoch of the highest test accuracy (the first one on ties).
The markers built on the two-layer model's signal-noise decomposition (t_clean aside, which is
not tracked here either: t_overtake, t_cross, t_cross_flipped) are NEVER: a deep network on
images has no such decomposition. Snapshots of the tracked markers live in the scan carry.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from noisyjax.synthetic.metrics import auroc, loss_summaries, masked_mean
from noisyjax.synthetic.stages import NEVER, TRANSITIONS, fit_hits

PROBES = ("train_acc_noisy", "frac_noisy_above_log2", "frac_clean_below_log2", "loss_auroc")
TRACKED = ("t1", "t_stage1", "t_memorize", "t_half_flipped", "t2", "t_best")


class RealSnapshot(NamedTuple):
    """A run's network at one stage, and its flip mask (the same at every stage)."""

    variables: dict[str, Any]  # {"params": ..., "batch_stats": ...}
    epoch: jax.Array  # () int32, NEVER if the stage was not reached
    flipped: jax.Array  # (N,) bool


class RealStages(NamedTuple):
    times: dict[str, jax.Array]  # name -> () int32
    probes: dict[str, dict[str, jax.Array]]  # name -> probe -> value at that time
    test_err: dict[str, jax.Array]  # name -> test error at that time
    best_test_err: jax.Array
    snapshots: dict[str, RealSnapshot]


def init_stages(snap: RealSnapshot, snapshot_stages: tuple[str, ...]) -> RealStages:
    never = jnp.asarray(NEVER, jnp.int32)
    nan = jnp.asarray(jnp.nan, jnp.float32)
    return RealStages(
        times={t: never for t in TRACKED},
        probes={t: {p: nan for p in PROBES} for t in TRACKED},
        test_err={t: nan for t in TRACKED},
        best_test_err=jnp.asarray(jnp.inf, jnp.float32),
        snapshots={t: snap._replace(epoch=never) for t in TRACKED if t in snapshot_stages},
    )


def observe(
    stages: RealStages, snap: RealSnapshot, z_N: jax.Array, test_err: jax.Array, metrics: dict
) -> RealStages:
    """Update the transitions with the state at the end of epoch `snap.epoch` (margins z_N
    w.r.t. the observed labels; `metrics` holds this epoch's PROBES)."""
    fitted_N = z_N > 0
    acc_noisy = masked_mean(fitted_N.astype(z_N.dtype), snap.flipped)
    hits = fit_hits(
        stages.times, fitted_N, snap.flipped, metrics["frac_noisy_above_log2"], acc_noisy
    )
    new = {name: (stages.times[name] == NEVER) & hit for name, hit in hits.items()}
    new["t_best"] = test_err < stages.best_test_err

    def pick(n, a, b):
        return jax.tree.map(lambda u, v: jnp.where(n, u, v), a, b)

    values = {p: metrics[p] for p in PROBES}
    return RealStages(
        times={t: jnp.where(new[t], snap.epoch, stages.times[t]) for t in TRACKED},
        probes={t: pick(new[t], values, stages.probes[t]) for t in TRACKED},
        test_err={t: jnp.where(new[t], test_err, stages.test_err[t]) for t in TRACKED},
        best_test_err=jnp.where(new["t_best"], test_err, stages.best_test_err),
        snapshots={t: pick(new[t], snap, s) for t, s in stages.snapshots.items()},
    )


def summary(stages: RealStages) -> dict[str, jax.Array]:
    """Per-run scalars with the synthetic sweeps' names (untracked markers are NEVER)."""
    out: dict[str, jax.Array] = {t: stages.times[t] for t in TRACKED}
    out |= {t: jnp.asarray(NEVER, jnp.int32) for t in TRANSITIONS if t not in TRACKED}
    for t in TRACKED:
        for key, value in stages.probes[t].items():
            out[f"{t}_{key}"] = value
        out[f"{t}_test_err"] = stages.test_err[t]
    out["stage_one_exists"] = stages.times["t_stage1"] != NEVER
    out["best_test_err"] = stages.best_test_err
    return out


def loss_metrics(z_N: jax.Array, flipped_N: jax.Array) -> dict[str, jax.Array]:
    """Per-sample loss summaries of docs/science.md section 4 from observed-label margins (the
    synthetic runs' `noisyjax.synthetic.metrics.loss_summaries`, plus the median losses)."""
    loss_N = jax.nn.softplus(-z_N)
    clean_N, noisy_N = ~flipped_N, flipped_N
    return {
        "train_loss": jnp.mean(loss_N),
        "train_loss_clean_median": jnp.nanmedian(jnp.where(clean_N, loss_N, jnp.nan)),
        "train_loss_noisy_median": jnp.nanmedian(jnp.where(noisy_N, loss_N, jnp.nan)),
        **loss_summaries(loss_N, clean_N, noisy_N),
    }


def rank_auroc(score_N: jax.Array, positive_N: jax.Array) -> jax.Array:
    """AUROC of `score` for positives vs all other samples, ties 1/2
    (`noisyjax.synthetic.metrics.auroc`,
    O(N log N)); NaN if a side is empty."""
    return auroc(score_N, positive_N, ~positive_N)


assert set(TRACKED) <= set(TRANSITIONS)
