"""noisyjax: label noise and the two stages of feature learning (Han et al., ICML 2025) in JAX."""

from noisyjax import _moved
from noisyjax.errors import ConfigError
from noisyjax.sweep import (
    Axis,
    Experiment,
    Plan,
    Refine,
    RunTable,
    Sweep,
    SweepDirError,
    Zip,
    expand,
    load_refinement,
    load_sweep,
    parse_axis,
    plan,
    run_refined,
    run_sweep,
)
from noisyjax.synthetic import (  # noqa: F401  (nj.config, nj.metrics, ...: their old attributes)
    checkpoints,
    config,
    data,
    decomposition,
    engines,
    metrics,
    model,
    stages,
    theory,
    train,
)
from noisyjax.synthetic.checkpoints import load_filters, load_run, load_run_data, load_stage
from noisyjax.synthetic.config import TRANSITION_NAMES, Config, HParams, Sizes
from noisyjax.synthetic.data import Batch, realized_rates, sample
from noisyjax.synthetic.decomposition import Geometry, geometry, rebuild_displacement
from noisyjax.synthetic.engines import GramBatch, filters, to_gram
from noisyjax.synthetic.metrics import METRIC_NAMES, measure
from noisyjax.synthetic.model import activation, apply, init_params, preactivations
from noisyjax.synthetic.stages import NEVER, PROBES, Snapshot
from noisyjax.synthetic.train import TrainState, fit, make_train, sample_run

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
    "Refine",
    "RunTable",
    "Sizes",
    "Sweep",
    "SweepDirError",
    "TrainState",
    "Zip",
    "activation",
    "apply",
    "expand",
    "filters",
    "fit",
    "geometry",
    "init_params",
    "load_refinement",
    "load_sweep",
    "make_train",
    "measure",
    "parse_axis",
    "plan",
    "preactivations",
    "realized_rates",
    "rebuild_displacement",
    "run_refined",
    "run_sweep",
    "sample",
    "sample_run",
    "to_gram",
]
__version__ = "0.1.0"
_moved.install()
