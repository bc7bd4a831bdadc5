"""Sample selection from per-sample training losses (docs/science.md sections 1 and 6.2).

Post-hoc functions on plain arrays: `loss_TN` holds the training loss (w.r.t. observed labels)
of each sample at each logged step, NaN on padding samples; `flipped_N` marks the samples whose
observed label is wrong. A selection keeps the samples it believes clean:
  log 2 rule         keep loss < log 2, i.e. margin y_obs f > 0 (the paper's threshold);
  small-loss rule    keep the round((1 - tau_hat) n) samples with the smallest loss, for an
                     assumed noise rate tau_hat (co-teaching style; tau_hat may differ from tau).
Scores treat clean samples as the positive class: precision = |kept and clean| / |kept|,
recall = |kept and clean| / |clean|, F1 their harmonic mean (NaN where undefined). AUROC is the
per-sample loss as a detector of flipped samples (Mann-Whitney, ties 1/2), as in
`noisyjax.synthetic.metrics.auroc`.

Shape letters: T logged steps (any leading axes), N samples.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from noisyjax.analysis.early_stopping import check_tau_hat
from noisyjax.errors import fail
from noisyjax.synthetic.config import Config, HParams
from noisyjax.synthetic.data import Batch
from noisyjax.synthetic.metrics import LOG2, auroc
from noisyjax.synthetic.model import Params
from noisyjax.synthetic.train import Metrics, TrainState, fit

SCORES = ("precision", "recall", "f1")


def select_below_log2(loss_TN: np.ndarray) -> np.ndarray:
    """Keep the samples with loss < log 2 (NaN, i.e. padding, is never kept)."""
    loss_TN = np.asarray(loss_TN, float)
    return np.where(np.isnan(loss_TN), False, loss_TN < LOG2)


def select_small_loss(loss_TN: np.ndarray, tau_hat: float) -> np.ndarray:
    """Keep the round((1 - tau_hat) n_active) smallest losses of each row (ties by index);
    tau_hat in [0, 0.5), as `noisyjax.analysis.early_stopping.check_tau_hat` checks."""
    check_tau_hat(tau_hat)
    loss_TN = np.asarray(loss_TN, float)
    active_TN = ~np.isnan(loss_TN)
    keep_T = np.round((1.0 - tau_hat) * active_TN.sum(-1)).astype(int)
    order_TN = np.argsort(np.where(active_TN, loss_TN, np.inf), axis=-1, kind="stable")
    rank_TN = np.argsort(order_TN, axis=-1, kind="stable")
    return (rank_TN < keep_T[..., None]) & active_TN


def selection_scores(
    selected_TN: np.ndarray, flipped_N: np.ndarray, active_N: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Precision, recall and F1 of a selection, clean samples being the positive class."""
    selected_TN = np.asarray(selected_TN, bool)
    flipped_N = np.asarray(flipped_N, bool)
    active_N = np.ones(flipped_N.shape, bool) if active_N is None else np.asarray(active_N, bool)
    clean_N = active_N & ~flipped_N
    kept_TN = selected_TN & active_N
    hits = np.sum(kept_TN & clean_N, axis=-1).astype(float)
    kept = np.sum(kept_TN, axis=-1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(kept > 0, hits / kept, np.nan)
        recall = np.where(clean_N.sum(-1) > 0, hits / clean_N.sum(-1), np.nan)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    f1 = np.where(np.isnan(precision) | np.isnan(recall), np.nan, f1)
    return {"precision": precision, "recall": recall, "f1": f1}


def loss_auroc(loss_TN: np.ndarray, flipped_N: np.ndarray) -> np.ndarray:
    """P(loss of a flipped sample > loss of a clean one), ties 1/2; NaN without both kinds.

    `noisyjax.synthetic.metrics.auroc` on each row of active (non-NaN) samples, in float64."""
    loss_TN = np.asarray(loss_TN, float)
    flipped_TN = np.broadcast_to(np.asarray(flipped_N, bool), loss_TN.shape)
    active_TN = ~np.isnan(loss_TN)
    rows = (-1, loss_TN.shape[-1])
    with jax.enable_x64(True):  # the float64 losses as they are, whatever the global setting
        value_R = _row_auroc(
            jnp.asarray(loss_TN.reshape(rows)),
            jnp.asarray((active_TN & flipped_TN).reshape(rows)),
            jnp.asarray((active_TN & ~flipped_TN).reshape(rows)),
        )
        return np.asarray(value_R, float).reshape(loss_TN.shape[:-1])


_row_auroc = jax.jit(jax.vmap(auroc))


def selection_metrics(ds: xr.Dataset, tau_hats: tuple[float, ...]) -> xr.Dataset:
    """Selection scores along training for every run of a sweep logged with `log_samples`.

    Needs `sample_loss` (..., step, sample) and `sample_flipped` (..., sample). Returns
    `log2_{precision,recall,f1}` (..., step), `small_loss_{precision,recall,f1}` with a
    `tau_hat` dimension, and `auroc` (..., step).
    """
    for name in ("sample_loss", "sample_flipped"):
        if name not in ds:
            fail("dataset", name, "a sweep run with Config(log_samples=True)")
    loss = ds["sample_loss"]
    flipped = ds["sample_flipped"].astype(bool)
    active = loss.notnull().any("step")

    def scores(selected: xr.DataArray, prefix: str) -> dict[str, xr.DataArray]:
        out = xr.apply_ufunc(
            lambda s, f, a: np.stack(
                list(selection_scores(s, f[..., None, :], a[..., None, :]).values()), axis=-1
            ),
            selected,
            flipped,
            active,
            input_core_dims=[["step", "sample"], ["sample"], ["sample"]],
            output_core_dims=[["step", "score"]],
        )
        return {f"{prefix}_{k}": out.isel(score=i) for i, k in enumerate(SCORES)}

    log2 = xr.apply_ufunc(select_below_log2, loss)
    small = xr.concat(
        [xr.apply_ufunc(lambda v, t=t: select_small_loss(v, t), loss) for t in tau_hats],
        dim=xr.DataArray(np.asarray(tau_hats, float), dims="tau_hat", name="tau_hat"),
    )
    auroc = xr.apply_ufunc(
        lambda v, f: loss_auroc(v, f[..., None, :]),
        loss,
        flipped,
        input_core_dims=[["step", "sample"], ["sample"]],
        output_core_dims=[["step"]],
    )
    return xr.Dataset({**scores(log2, "log2"), **scores(small, "small_loss"), "auroc": auroc})


def train_on_subset(
    params: Params,
    train: Batch,
    test: Batch,
    keep_N,
    cfg: Config,
    hp: HParams,
    key: jax.Array | None = None,
) -> tuple[TrainState, Metrics]:
    """Train from `params` on the kept samples only (the others get zero weight in the loss).

    The training batch's `mask` is what `noisyjax.fit` averages the loss over, so this is
    training from scratch on the selected set, with the same data, init and test set. `key` is
    `fit`'s: needed with minibatches or label-noise GD. Not jitted: wrap it in `jax.jit` (with
    `cfg` static) or `vmap` over runs as needed.
    """
    return fit(params, train._replace(mask=train.mask & keep_N), test, cfg, hp, key=key)
