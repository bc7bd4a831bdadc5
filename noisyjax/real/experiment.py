"""The real-image experiment: flax CNNs on binary image tasks, as the sweep engine runs it
(`noisyjax.sweep.experiment.Experiment`).

Every run of a sweep trains on the same images (loaded once, replicated on every device) with its
own flips, initialization and batch order. All runs compile together (one bucket) and a run's
inputs are its seed and hyperparameters: the protocol's defaults. Axes sweep the
hyperparameters (and `tau`, which sets tau_plus = tau_minus).
"""

from __future__ import annotations

import math

import jax
import numpy as np

from noisyjax.errors import fail
from noisyjax.real import variables
from noisyjax.real.config import REAL_STAGES, RealConfig, RealHParams
from noisyjax.real.datasets import Images, cifar_source, load
from noisyjax.real.models import make_model
from noisyjax.real.train import make_train, snapshot_of
from noisyjax.sweep.experiment import Experiment

SAFETY = 2.0  # headroom over the counted tensors in `bytes_per_run`
METRICS_PER_EPOCH = 20  # accuracies and loss summaries logged every epoch (an upper bound)
_IMAGES: dict[RealConfig, Images] = {}


def load_cached(cfg: RealConfig) -> Images:
    """`datasets.load`, once per data-defining config in this process."""
    key = cfg.replace(epochs=1, lr_milestones=(), snapshot_stages=())
    if key not in _IMAGES:
        _IMAGES.clear()
        _IMAGES[key] = load(cfg)
    return _IMAGES[key]


def derive(derived: dict[str, np.ndarray], columns: dict[str, np.ndarray]) -> dict:
    return {"tau_plus": derived["tau"], "tau_minus": derived["tau"]} if "tau" in derived else {}


def check(cfg: RealConfig, columns: dict[str, np.ndarray]) -> None:
    """Unequal flip rates need class-conditional flips."""
    unequal = columns["tau_plus"] != columns["tau_minus"]
    if not cfg.class_conditional and unequal.any():
        fail(
            "tau_minus",
            float(columns["tau_minus"][np.argmax(unequal)]),
            "equal to tau_plus unless class_conditional=true (or sweep 'tau')",
        )


def prepare(cfg: RealConfig) -> dict:
    """Check the data set is there (a missing CIFAR tarball fails before anything is written)
    and fits the batch size; the plan records its sizes."""
    if cfg.dataset == "cifar2":
        cifar_source(cfg)
    images = load_cached(cfg)
    if cfg.batch_size > len(images.label_train):
        fail("batch_size", cfg.batch_size, f"an integer in [1, {len(images.label_train)}]")
    return {"n_train": len(images.label_train), "n_test": len(images.label_test)}


def make_run(cfg: RealConfig):
    """run((seed, hp), images) -> (metrics, snapshots) of one run."""
    train = make_train(cfg)

    def run(inputs, images):
        seed, hp = inputs
        state, metrics = train(jax.random.key(seed), hp, images)
        snapshots = dict(state.stages.snapshots)
        if "final" in cfg.snapshot_stages:
            snapshots["final"] = snapshot_of(state)
        return metrics, snapshots

    return run


def parameter_count(cfg: RealConfig) -> int:
    params, stats = jax.eval_shape(make_model(cfg).init, jax.random.key(0))
    return sum(math.prod(a.shape) for a in jax.tree.leaves((params, stats)))


def snapshot_bytes(cfg: RealConfig) -> int:
    return 4 * parameter_count(cfg) * len(cfg.snapshot_stages)


def bytes_per_run(cfg: RealConfig) -> int:
    """Estimated peak memory of one run: weights, momentum, gradients, snapshots, activations."""
    h, w, _ = cfg.image_shape
    # Feature maps per image, forward and backward: at most 8x the first layer's, 4 maps per
    # layer (convolution, normalization, activation, gradient), about 10 layers.
    activations = 4 * 10 * h * w * cfg.width * max(cfg.batch_size, cfg.eval_batch)
    weights = (4 + len(cfg.snapshot_stages)) * parameter_count(cfg)
    return int(SAFETY * 4 * (activations + weights))


def output_bytes(cfg: RealConfig) -> int:
    """One run's outputs held for a chunk: per-epoch metrics, per-sample arrays, snapshots."""
    n = len(load_cached(cfg).label_train)
    return 4 * ((cfg.epochs + 1) * METRICS_PER_EPOCH + 2 * n + 100) + snapshot_bytes(cfg)


EXPERIMENT = Experiment(
    name="real",
    config_type=RealConfig,
    hparams_type=RealHParams,
    shape_axes=(),
    derived_axes={"tau": ("tau_plus", "tau_minus")},
    derive=derive,
    check=check,
    prepare=prepare,
    shared=load_cached,
    make_run=make_run,
    samples=lambda cfg: len(load_cached(cfg).label_train),
    bytes_per_run=bytes_per_run,
    output_bytes=output_bytes,
    snapshot_bytes=snapshot_bytes,
    describe=lambda cfg: {"model": cfg.model},
    variables=variables.describe,
    stages=REAL_STAGES,
    time="epoch",
)
