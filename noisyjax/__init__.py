"""noisyjax: label noise and the two stages of feature learning (Han et al., ICML 2025) in JAX."""

from noisyjax.config import Config, ConfigError, HParams, Sizes
from noisyjax.data import Batch, realized_rates, sample
from noisyjax.decomposition import Geometry, geometry, rebuild_displacement
from noisyjax.metrics import METRIC_NAMES, measure
from noisyjax.model import activation, apply, init_params, preactivations
from noisyjax.train import TrainState, fit, make_train

__all__ = [
    "METRIC_NAMES", "Batch", "Config", "ConfigError", "Geometry", "HParams", "Sizes",
    "TrainState", "activation", "apply", "fit", "geometry", "init_params", "make_train",
    "measure", "preactivations", "realized_rates", "rebuild_displacement", "sample",
]
__version__ = "0.1.0"
