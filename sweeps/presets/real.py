"""Presets of the real-image experiment (docs/science.md section 8, docs/real-data.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

from noisyjax.real.config import RealConfig, RealHParams
from noisyjax.sweep import Axis, Sweep, sweep_of

ATTRIBUTION_TAU = 0.2
ATTRIBUTION_IMAGES = 6


def real_digits() -> tuple[Sweep, Callable]:
    """Two stages on real images: 8x8 digits 3 vs 8, small CNN, tau in {0, 0.2}, 4 seeds.

    Command: python -m sweeps.grid --preset real-digits
    Runtime: about 1-2 minutes on a 2-core CPU (8 runs of 100 epochs, 238 training and 119
    test images, minibatch SGD with momentum; offline: scikit-learn's bundled digits).
    Figures:
      trajectories.png: per tau, clean, flipped (observed and true labels) and test accuracy
        over epochs (mean and min-max over seeds), and the log-2 separation, dashed lines at
        the seeds' median t1 and t2. At tau = 0.2 the flipped samples stay near 0 (observed
        labels) for the first epochs while clean accuracy is near 1 (Stage I), then climb to 1
        (Stage II); test accuracy peaks early and ends lower. At tau = 0 there is one stage.
      attributions.png: integrated gradients of the observed-label margin of 6 clean and 6
        flipped training images at the t_best, t1 and final checkpoints of the first tau = 0.2
        run that reached t1 (red supports the observed label).
    """
    cfg = RealConfig(
        dataset="digits",
        classes=(3, 8),
        model="small_cnn",
        width=16,
        epochs=100,
        batch_size=32,
        momentum=0.9,
        lr_milestones=(75,),
        lr_gamma=0.1,
    )
    hp = RealHParams(lr=0.003, weight_decay=5e-4)
    sweep = Sweep("real-digits", cfg, hp, (Axis("tau", (0.0, 0.2)),), seeds=4)
    return sweep, real_figures


def real_cifar2() -> tuple[Sweep, Callable]:
    """The paper's CIFAR-10 experiment: airplane vs automobile, VGG-11, 20% exact flips (GPU/TPU).

    Command: python -m sweeps.grid --preset real-cifar2 --set cifar_path=PATH/cifar-10-python.tar.gz
      (or NOISYJAX_CIFAR=PATH; without either the official tarball is downloaded once into
      ~/.cache/noisyjax or $NOISYJAX_DATA and its MD5 checked).
    Runtime: GPU/TPU sized: 2 tau x 3 seeds of VGG-11 on 10,000 training images for 100
      epochs; see docs/real-data.md for the expected time. Hours on a CPU.
    Figures: the same two as real-digits: trajectories.png (Stage I: clean accuracy rises while
      flipped accuracy stays low; Stage II: flipped samples memorized, test accuracy falls from
      its peak) and attributions.png (t1: the object; final: memorized flipped images).
    """
    cfg = RealConfig(
        dataset="cifar2",
        classes=(0, 1),
        model="vgg11",
        width=64,
        epochs=100,
        batch_size=128,
        momentum=0.9,
        lr_milestones=(50, 75),
        lr_gamma=0.1,
        eval_batch=1000,
    )
    hp = RealHParams(lr=0.01, weight_decay=5e-4)
    sweep = Sweep("real-cifar2", cfg, hp, (Axis("tau", (0.0, 0.2)),), seeds=3)
    return sweep, real_figures


def real_figures(ds: xr.Dataset, out: Path) -> list[Path]:
    from noisyjax.real.attributions import stage_attributions
    from noisyjax.real.plots import accuracy_trajectories, attribution_grid

    paths = [accuracy_trajectories(ds, out / "trajectories.png")]
    run = attribution_run(ds)
    if run is None:
        return paths
    # t_best is shown too: on real data t1 (every clean sample fitted) can come late, after the
    # flipped samples have begun to be memorized; t_best is the Stage-I network.
    stages = tuple(s for s in ("t_best", "t1", "final") if s in _kept(ds))
    found = stage_attributions(out, stages, ATTRIBUTION_IMAGES, **run)
    title = ", ".join(f"{k}={v:g}" for k, v in run.items()) + ": integrated gradients"
    paths.append(
        attribution_grid(
            found["images"],
            found["attributions"],
            found["groups"],
            found["captions"],
            out / "attributions.png",
            title=title,
        )
    )
    return paths


def attribution_run(ds: xr.Dataset) -> dict[str, float] | None:
    """The first seed at the noisiest tau <= 0.2 that reached t1 (else seed 0); None without
    flipped samples."""
    if "tau" not in ds.dims or float(ds["tau"].max()) == 0.0:
        return None
    taus = ds["tau"].values
    candidates = taus[(taus > 0) & (taus <= ATTRIBUTION_TAU)]
    tau = float(candidates.max() if len(candidates) else taus[taus > 0].min())
    t1 = ds["t1"].sel(tau=tau).values
    reached = np.flatnonzero(t1 >= 0)
    seed = int(ds["seed"].values[reached[0] if len(reached) else 0])
    coords = {d: float(ds[d].values[0]) for d in ds["t1"].dims if d not in ("tau", "seed")}
    return {**coords, "tau": tau, "seed": seed}


def _kept(ds: xr.Dataset) -> tuple[str, ...]:
    return sweep_of(ds).cfg.snapshot_stages
