"""Integrated gradients (Sundararajan et al. 2017) of a network's margin, in JAX.

The paper explains its VGG's predictions with SHAP at an early and a late checkpoint
(docs/science.md section 8); we use integrated gradients, a path attribution method computed with
the network's own gradients, which satisfies completeness: the attributions of an image sum to
margin(image) - margin(baseline) up to the Riemann error of `steps` points.

Shape letters: N images, H W C image, K interpolation points.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from noisyjax.real.models import margin


def integrated_gradients(
    logits_fn: Callable[[jax.Array], jax.Array],
    x_NHWC: jax.Array,
    label_N: jax.Array,
    baseline_HWC: jax.Array | None = None,
    steps: int = 64,
) -> jax.Array:
    """Attributions (N, H, W, C) of the margin of `label_N` (logit of the label minus the other).

    `logits_fn` maps (B, H, W, C) images to (B, 2) logits (inference mode). The baseline is the
    all-zero image, the training mean after per-channel normalization. Midpoint rule over
    `steps` points of the straight path from the baseline.
    """
    baseline_HWC = (
        jnp.zeros(x_NHWC.shape[1:], x_NHWC.dtype) if baseline_HWC is None else baseline_HWC
    )
    alpha_K = (jnp.arange(steps, dtype=x_NHWC.dtype) + 0.5) / steps

    def one(x_HWC: jax.Array, label: jax.Array) -> jax.Array:
        def score(path_KHWC: jax.Array) -> jax.Array:
            label_K = jnp.broadcast_to(label, (path_KHWC.shape[0],))
            return jnp.sum(margin(logits_fn(path_KHWC), label_K))

        path_KHWC = baseline_HWC[None] + alpha_K[:, None, None, None] * (x_HWC - baseline_HWC)[None]
        grad_KHWC = jax.grad(score)(path_KHWC)
        return (x_HWC - baseline_HWC) * jnp.mean(grad_KHWC, axis=0)

    return jax.vmap(one)(x_NHWC, label_N)


def stage_attributions(
    sweep_dir, stages: tuple[str, ...], n_show: int, steps: int = 64, **coords
) -> dict:
    """Integrated gradients of one run's observed-label margin at its stage checkpoints, for its
    first `n_show` clean and first `n_show` flipped training images.

    Returns {"images", "attributions" (checkpoint label -> (N, H, W, C)), "groups", "captions",
    "epochs"} for `noisyjax.real.plots.attribution_grid`.
    """
    import numpy as np

    from noisyjax.real.checkpoints import load_real_stage, sweep_config
    from noisyjax.real.experiment import load_cached
    from noisyjax.real.models import make_model

    cfg = sweep_config(sweep_dir)
    model = make_model(cfg)
    images = load_cached(cfg)
    snaps = {stage: load_real_stage(sweep_dir, stage, **coords) for stage in stages}
    flipped_N = np.asarray(next(iter(snaps.values())).flipped)
    clean = np.flatnonzero(~flipped_N)[:n_show]
    noisy = np.flatnonzero(flipped_N)[:n_show]
    idx = np.concatenate([clean, noisy])
    x_NHWC = jnp.asarray(images.x_train[idx])
    label_N = images.label_train[idx]
    y_obs_N = np.where(flipped_N[idx], 1 - label_N, label_N)
    attributions, epochs = {}, {}

    @jax.jit  # one compile for every checkpoint: the weights are arguments
    def explain(params, stats, x, y):
        return integrated_gradients(
            lambda v: model.logits(params, stats, v, False)[0], x, y, None, steps
        )

    for stage, snap in snaps.items():
        params, stats = snap.variables["params"], snap.variables.get("batch_stats") or {}
        name = f"{stage} (epoch {int(snap.epoch)})" if snap.epoch >= 0 else f"{stage} (never)"
        attributions[name] = np.asarray(explain(params, stats, x_NHWC, jnp.asarray(y_obs_N)))
        epochs[stage] = int(snap.epoch)
    names = cfg.classes
    captions = [f"true {names[t]}, seen {names[o]}" for t, o in zip(label_N, y_obs_N, strict=True)]
    groups = {"clean": np.arange(len(clean)), "flipped": len(clean) + np.arange(len(noisy))}
    return {
        "images": np.asarray(x_NHWC),
        "attributions": attributions,
        "groups": groups,
        "captions": captions,
        "epochs": epochs,
    }
