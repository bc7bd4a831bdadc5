"""The paper's measurements of one training state (docs/science.md section 4).

Every function is per run and returns scalars; a subset with no members (no flipped sample when
tau = 0) gives NaN for its metrics. Shape letters: N samples, J signs, M filters.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from noisyjax.synthetic.config import Config, HParams
from noisyjax.synthetic.decomposition import Geometry, step_norms
from noisyjax.synthetic.engines import AnyBatch, get
from noisyjax.synthetic.model import Params

LOG2 = math.log(2.0)

METRIC_NAMES = (
    "step",
    "train_loss",
    "train_loss_clean",
    "train_loss_noisy",
    "train_acc",
    "train_acc_clean",
    "train_acc_noisy",
    "train_acc_noisy_true",
    "test_err",
    "test_err_noisy_labels",
    "gamma_max",
    "rho_bar_clean",
    "rho_bar_noisy",
    "rho_bar_clean_max",
    "rho_bar_noisy_max",
    "rho_under_min",
    "frac_clean_below_log2",
    "frac_noisy_above_log2",
    "loss_auroc",
    "grad_signal_norm",
    "grad_noise_norm",
)
# Logged only with Config.n_val > 0 / Config.log_samples (per training sample: dims step, sample).
VAL_METRIC_NAMES = ("val_err", "val_err_noisy_labels")
SAMPLE_METRIC_NAMES = ("sample_loss", "sample_margin")


def metric_names(cfg: Config) -> tuple[str, ...]:
    """The trajectory names a run of `cfg` logs."""
    return (
        METRIC_NAMES
        + (VAL_METRIC_NAMES if cfg.n_val else ())
        + (SAMPLE_METRIC_NAMES if cfg.log_samples else ())
    )


def masked_mean(v_N: jax.Array, sel_N: jax.Array) -> jax.Array:
    """Mean of v over the selected entries; NaN when nothing is selected."""
    count = jnp.sum(sel_N).astype(v_N.dtype)
    total = jnp.sum(jnp.where(sel_N, v_N, 0.0))
    return jnp.where(count > 0, total / jnp.maximum(count, 1.0), jnp.nan)


def masked_max(v_N: jax.Array, sel_N: jax.Array) -> jax.Array:
    """Max of v over the selected entries; NaN when nothing is selected."""
    top = jnp.max(jnp.where(sel_N, v_N, -jnp.inf))
    return jnp.where(jnp.any(sel_N), top, jnp.nan).astype(v_N.dtype)


def mann_whitney_pairs(
    score_N: jax.Array, positive_N: jax.Array, negative_N: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """(2 U, n_pos n_neg) as integers: U = sum over (positive i, negative j) pairs of
    [s_i > s_j] + [s_i = s_j] / 2, the Mann-Whitney statistic, in O(N log N).

    Each positive counts the negatives below and equal to it in the sorted negative scores.
    A pair wins as `s_i - s_j > 0` and ties as `s_i - s_j == 0` (the pairwise definition): a
    NaN score wins and ties nothing, and two equal infinities do not tie (inf - inf is NaN).
    Integers make U exact (int32: N up to about 65,000 with x64 off)."""
    usable_N = negative_N & ~jnp.isnan(score_N)
    sorted_N = jnp.sort(jnp.where(usable_N, score_N, jnp.inf))  # absent negatives sort last
    below_N = jnp.searchsorted(sorted_N, score_N, side="left")  # negatives < s_i
    upto_N = jnp.searchsorted(sorted_N, score_N, side="right")  # negatives <= s_i
    ties_N = jnp.where(jnp.isfinite(score_N), upto_N - below_N, 0)
    counted_N = positive_N & ~jnp.isnan(score_N)
    twice_u = jnp.sum(jnp.where(counted_N, 2 * below_N + ties_N, 0))
    return twice_u, jnp.sum(positive_N) * jnp.sum(negative_N)


def auroc(score_N: jax.Array, positive_N: jax.Array, negative_N: jax.Array) -> jax.Array:
    """P(score of a positive > score of a negative), ties 1/2: U / (n_pos n_neg), the
    Mann-Whitney form of the area under the ROC curve; NaN if either side is empty.

    In the scores' dtype; U and the pair count are exact integers, so the value is their
    correctly rounded quotient (in float32 while 2 U < 2^24), bit for bit the O(N^2) pairwise
    mean of the wins that the sweeps logged before."""
    return auroc_of_pairs(*mann_whitney_pairs(score_N, positive_N, negative_N), score_N.dtype)


def auroc_of_pairs(twice_u: jax.Array, pairs: jax.Array, dtype) -> jax.Array:
    """The AUROC U / (n_pos n_neg) from `mann_whitney_pairs`'s integers, in `dtype`."""
    count = pairs.astype(dtype)
    value = (twice_u.astype(dtype) / 2) / jnp.maximum(count, 1.0)
    return jnp.where(count > 0, value, jnp.nan)


def loss_summaries(loss_N: jax.Array, clean_N: jax.Array, noisy_N: jax.Array) -> dict:
    """The clean / flipped loss summaries of docs/science.md section 4: mean losses, the log-2
    separation (loss < log 2 iff the observed-label margin is > 0) and the loss AUROC of the
    flipped samples against the clean ones. Masks exclude padding; NaN for an empty subset."""
    dtype = loss_N.dtype
    return {
        "train_loss_clean": masked_mean(loss_N, clean_N),
        "train_loss_noisy": masked_mean(loss_N, noisy_N),
        "frac_clean_below_log2": masked_mean((loss_N < LOG2).astype(dtype), clean_N),
        "frac_noisy_above_log2": masked_mean((loss_N > LOG2).astype(dtype), noisy_N),
        "loss_auroc": auroc(loss_N, noisy_N, clean_N),
    }


def test_error_counts(params: Params, test: AnyBatch, cfg: Config) -> dict[str, jax.Array]:
    """Number of 0-1 errors (y f <= 0) against the true and against the noisy labels (int32).

    Counts, not fractions: the stage markers compare them (t_best), and a count is the same
    integer whatever way a compiler rounds the division by the test-set size."""
    f_N = get(cfg.step_engine).outputs(params, test, cfg)
    return {
        "test_err": jnp.sum((test.y * f_N <= 0) & test.mask, dtype=jnp.int32),
        "test_err_noisy_labels": jnp.sum((test.y_obs * f_N <= 0) & test.mask, dtype=jnp.int32),
    }


def fraction(count: jax.Array, total: jax.Array | int, dtype) -> jax.Array:
    """count / total in `dtype`, correctly rounded (364 / 1000 is 0.364, not 0.36400002).

    XLA's CPU backend turns a division by a constant or broadcast scalar into a multiplication
    by its reciprocal, which is not correctly rounded; dividing by an array of the count's own
    shape (`total + 0 * count`: not folded, since 0 * x is not 0 for every float) keeps a true
    division, vmapped or not.
    """
    count = jnp.asarray(count).astype(dtype)
    return count / (jnp.asarray(total).astype(dtype) + 0 * count)


def error_rates(wrong: dict[str, jax.Array], test: AnyBatch) -> dict[str, jax.Array]:
    """Test-error counts as fractions of the active test samples (`fraction`)."""
    n_test = jnp.sum(test.mask)
    return {name: fraction(count, n_test, test.y.dtype) for name, count in wrong.items()}


def test_errors(
    params: Params, test: AnyBatch, cfg: Config, prefix: str = "test"
) -> dict[str, jax.Array]:
    """0-1 error against the true labels and against the noisy labels (y f <= 0)."""
    rates = error_rates(test_error_counts(params, test, cfg), test)
    return {name.replace("test", prefix, 1): value for name, value in rates.items()}


def measure(
    params: Params,
    gamma_JM: jax.Array,
    rho_bar_JMN: jax.Array,
    rho_under_JMN: jax.Array,
    train: AnyBatch,
    test: AnyBatch,
    geom: Geometry,
    cfg: Config,
    hp: HParams,
    val: AnyBatch | None = None,
    wrong: dict[str, jax.Array] | None = None,
) -> dict[str, jax.Array]:
    """Every per-step metric of docs/science.md section 4 for one run (`step` is added later).

    `wrong`: this state's test-error counts (`test_error_counts`), when the caller has them; the
    test errors are then those counts over the test-set size, with no second evaluation.

    grad_*_norm are the norms of the full-batch GD step (observed labels, step eta) taken from
    this state, whichever optimizer trains the run.
    """
    engine = get(cfg.step_engine)
    f_N, backward = engine.forward(params, train, cfg)
    z_N = train.y_obs * f_N
    loss_N = jax.nn.softplus(-z_N)
    correct_N = (z_N > 0).astype(z_N.dtype)
    clean_N = train.mask & ~train.flipped
    noisy_N = train.mask & train.flipped
    # max_r rho_bar_{y_obs_i, r, i}: filter group 0 holds j = +1.
    rho_bar_JN = jnp.max(rho_bar_JMN, axis=1)
    own_N = jnp.where(train.y_obs > 0, rho_bar_JN[0], rho_bar_JN[1])
    weight_N = train.mask.astype(z_N.dtype) / jnp.sum(train.mask).astype(z_N.dtype)
    grads, dc_JMK = backward(weight_N * train.y_obs * -jax.nn.sigmoid(-z_N))
    eta = jnp.asarray(hp.eta, z_N.dtype)
    moved_JMK = engine.moved_projections(grads)  # dC G, where the engine carries P = <W, V>
    moved_JMK = None if moved_JMK is None else -eta * moved_JMK
    grad_signal, grad_noise = step_norms(-eta * dc_JMK, geom, moved_JMK)
    return {
        "train_loss": masked_mean(loss_N, train.mask),
        **loss_summaries(loss_N, clean_N, noisy_N),
        "train_acc": masked_mean(correct_N, train.mask),
        "train_acc_clean": masked_mean(correct_N, clean_N),
        "train_acc_noisy": masked_mean(correct_N, noisy_N),
        "train_acc_noisy_true": masked_mean((z_N < 0).astype(z_N.dtype), noisy_N),  # y f > 0
        **(test_errors(params, test, cfg) if wrong is None else error_rates(wrong, test)),
        "gamma_max": jnp.max(gamma_JM),
        "rho_bar_clean": masked_mean(own_N, clean_N),
        "rho_bar_noisy": masked_mean(own_N, noisy_N),
        "rho_bar_clean_max": masked_max(own_N, clean_N),
        "rho_bar_noisy_max": masked_max(own_N, noisy_N),
        "rho_under_min": jnp.min(jnp.where(train.mask[None, None, :], rho_under_JMN, 0.0)),
        "grad_signal_norm": grad_signal,
        "grad_noise_norm": grad_noise,
        **(test_errors(params, val, cfg, prefix="val") if val is not None else {}),
        **(
            {  # the detectors' records (noisyjax.analysis.detectors): loss and y_obs f
                "sample_loss": jnp.where(train.mask, loss_N, jnp.nan),
                "sample_margin": jnp.where(train.mask, z_N, jnp.nan),
            }
            if cfg.log_samples
            else {}
        ),
    }
