"""noisyjax: label noise and the two stages of feature learning (Han et al., ICML 2025) in JAX."""

from noisyjax import _moved
from noisyjax.checkpoints import load_filters, load_run, load_run_data, load_stage
from noisyjax.config import TRANSITION_NAMES, Config, ConfigError, HParams, Sizes
from noisyjax.data import Batch, realized_rates, sample
from noisyjax.decomposition import Geometry, geometry, rebuild_displacement
from noisyjax.engines import GramBatch, filters, to_gram
from noisyjax.metrics import METRIC_NAMES, measure
from noisyjax.model import activation, apply, init_params, preactivations
from noisyjax.stages import NEVER, PROBES, Snapshot
from noisyjax.sweep import (
    Axis,
    Experiment,
    Plan,
    RunTable,
    Sweep,
    SweepDirError,
    expand,
    load_sweep,
    parse_axis,
    plan,
    run_sweep,
)
from noisyjax.train import TrainState, fit, make_train, sample_run

__all__ = [
    "METRIC_NAMES",
    "NEVER",
    "PROBES",
    "TRANSITION_NAMES",
    "Snapshot",
    "load_filters",
    "load_run",
    "load_run_data",
    "load_stage",
    "Axis",
    "Batch",
    "Config",
    "ConfigError",
    "Experiment",
    "Geometry",
    "GramBatch",
    "HParams",
    "Plan",
    "RunTable",
    "Sizes",
    "Sweep",
    "SweepDirError",
    "TrainState",
    "activation",
    "apply",
    "expand",
    "filters",
    "fit",
    "geometry",
    "init_params",
    "load_sweep",
    "make_train",
    "measure",
    "parse_axis",
    "plan",
    "preactivations",
    "realized_rates",
    "rebuild_displacement",
    "run_sweep",
    "sample",
    "sample_run",
    "to_gram",
]
__version__ = "0.1.0"
_moved.install()
