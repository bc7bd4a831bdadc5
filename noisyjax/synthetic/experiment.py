"""The synthetic experiment: the two-layer CNN on signal-plus-noise data, as the sweep engine
runs it (`noisyjax.sweep.experiment.Experiment`).

Runs are bucketed by m, compiled once per value, while n and d are padded to the largest value in
the bucket with masks (the wishart engine draws nothing of size d: there d is only a number);
engine "auto" is resolved per bucket; a padded run equals the unpadded one up to the rounding of
longer sums (`noisyjax.Sizes`; 1e-10 in float64).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from noisyjax.sweep.experiment import Experiment
from noisyjax.sweep.spec import RunTable
from noisyjax.synthetic import engines, variables
from noisyjax.synthetic.config import (
    HPARAM_FIELDS,
    STAGE_NAMES,
    TRANSITION_NAMES,
    Config,
    HParams,
    Sizes,
    wishart_min_d,
)
from noisyjax.synthetic.metrics import SAMPLE_METRIC_NAMES, metric_names
from noisyjax.synthetic.stages import PROBES, snapshot_of
from noisyjax.synthetic.train import make_train

SHAPE_AXES = ("n", "d", "m")
# Derived axes: "tau" sets tau_plus = tau_minus; "n_snr2" sets mu_norm so that
# n SNR^2 = n ||mu||^2 / (sigma_p^2 d) takes the given value (docs/science.md section 2).
DERIVED_AXES = {"tau": ("tau_plus", "tau_minus"), "n_snr2": ("mu_norm",)}
AXIS_NAMES = HPARAM_FIELDS + SHAPE_AXES + tuple(DERIVED_AXES)
SAFETY = 2.0  # headroom over the counted tensors in `bytes_per_run`


def derive(derived: dict[str, np.ndarray], columns: dict[str, np.ndarray]) -> dict:
    """The columns the derived axes set."""
    out = {}
    if "tau" in derived:
        out["tau_plus"] = out["tau_minus"] = derived["tau"]
    if "n_snr2" in derived:  # n ||mu||^2 / (sigma_p^2 d) = value
        out["mu_norm"] = np.sqrt(
            derived["n_snr2"] * columns["sigma_p"] ** 2 * columns["d"] / columns["n"]
        )
    return out


def resolve_engine(cfg: Config, d_min: int) -> Config:
    """The bucket's config with engine "auto" replaced by its choice; wishart needs every run's
    d >= 2 m + 2, so auto keeps a bucket holding a smaller d on dense."""
    if cfg.engine != "auto":
        return cfg
    chosen = cfg.step_engine
    if chosen == "wishart" and d_min < wishart_min_d(cfg.m):
        chosen = "dense"
    return cfg.replace(engine=chosen)


def buckets(cfg: Config, table: RunTable) -> list[tuple[Config, np.ndarray]]:
    """One bucket per m, at the largest n and d of its runs."""
    out = []
    for m in np.unique(table.shape["m"]):
        runs = np.flatnonzero(table.shape["m"] == m)
        padded = cfg.replace(
            m=int(m), n=int(table.shape["n"][runs].max()), d=int(table.shape["d"][runs].max())
        )
        out.append((resolve_engine(padded, int(table.shape["d"][runs].min())), runs))
    return out


def run_inputs(table: RunTable, runs: np.ndarray, cfg: Config) -> tuple:
    """(seed, hyperparameters, active sizes) of the runs, in the bucket's dtype."""
    dtype = np.dtype(cfg.dtype)
    hp = HParams(**{f: table.hp[f][runs].astype(dtype) for f in HPARAM_FIELDS})
    sizes = Sizes(
        n=table.shape["n"][runs].astype(np.int32), d=table.shape["d"][runs].astype(np.int32)
    )
    return table.seed[runs], hp, sizes


def make_run(cfg: Config):
    """run((seed, hp, sizes), None) -> (metrics, snapshots) of one run."""
    train = make_train(cfg)

    def run(inputs, shared):
        seed, hp, sizes = inputs
        state, metrics = train(jax.random.key(seed), hp, sizes)
        snapshots = dict(state.stages.snapshots)
        if "final" in cfg.snapshot_stages:
            snapshots["final"] = snapshot_of(state, engines.get(cfg.step_engine))
        return metrics, snapshots

    return run


def bytes_per_run(cfg: Config) -> int:
    """Estimated peak device memory of one run: data, weights, optimizer, activations, metrics."""
    n, m, nt = cfg.n, cfg.m, cfg.n_test + cfg.n_val
    samples = len(SAMPLE_METRIC_NAMES)  # per-sample trajectories (loss, margin)
    d_data, d_step, projections = engines.get(cfg.step_engine).memory(cfg)
    floats = (
        3 * (n + nt) * 2 * d_data  # train and test patches, plus sampling temporaries
        + (2 * m * cfg.d if cfg.init == "torch" else 0)  # filters drawn in R^d
        + projections  # on W(0) and V, of every set (gram, wishart)
        + (10 if cfg.optimizer == "adam" else 6) * 2 * m * d_step  # w, grads, updates, moments
        + 8 * (n + nt) * 2 * 2 * m  # pre-activations and their derivatives
        + 6 * 2 * m * n
        + 3 * n * n  # gamma/rho bookkeeping, noise Gram matrix
        + (0 if cfg.exact_recursion else (n + 1) * (cfg.d + 2 * (n + 1)))  # projection basis
        + cfg.n_logs * (len(metric_names(cfg)) + 4 + (samples * n if cfg.log_samples else 0))
        + 2 * len(TRANSITION_NAMES) * (len(PROBES) + n)  # marker probes, in and out
        + 2 * (len(cfg.snapshot_stages) + 1) * 2 * m * (d_step + 2 * n)  # snapshots, in and out
    )
    return int(SAFETY * floats * jnp.dtype(cfg.dtype).itemsize)


def output_bytes(cfg: Config) -> int:
    """Bytes of one run's outputs held for a whole chunk: trajectories, scalars, snapshots."""
    samples = len(SAMPLE_METRIC_NAMES)  # per-sample trajectories (loss, margin), n each
    per_log = len(metric_names(cfg)) + 1 + (samples * cfg.n if cfg.log_samples else 0)
    scalars = len(TRANSITION_NAMES) * (len(PROBES) + 1) + 16  # markers, probes, summaries
    trajectories = cfg.n_logs * per_log + scalars + 2 * cfg.n  # flip mask, observed labels
    return trajectories * jnp.dtype(cfg.dtype).itemsize + snapshot_bytes(cfg)


def snapshot_bytes(cfg: Config) -> int:
    """Bytes one run's stage snapshots take on disk (before compression)."""
    d_step = engines.get(cfg.step_engine).memory(cfg).d_step
    per_stage = 2 * cfg.m * (d_step + 2 + 2 * cfg.n) + 1
    return len(cfg.snapshot_stages) * per_stage * jnp.dtype(cfg.dtype).itemsize


def describe(cfg: Config) -> dict:
    return {"n": cfg.n, "d": cfg.d, "m": cfg.m, "engine": cfg.engine}


EXPERIMENT = Experiment(
    name="synthetic",
    config_type=Config,
    hparams_type=HParams,
    shape_axes=SHAPE_AXES,
    derived_axes=DERIVED_AXES,
    derive=derive,
    check=lambda cfg, columns: None,  # the config and hyperparameters hold every rule
    prepare=lambda cfg: {},
    buckets=buckets,
    run_inputs=run_inputs,
    shared=lambda cfg: None,
    make_run=make_run,
    samples=lambda cfg: cfg.n,
    bytes_per_run=bytes_per_run,
    output_bytes=output_bytes,
    snapshot_bytes=snapshot_bytes,
    describe=describe,
    variables=variables.describe,
    stages=STAGE_NAMES,
    time="step",
)
