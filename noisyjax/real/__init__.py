"""Real images (docs/science.md s. 8): binary digits and CIFAR-10, flax CNNs, optax SGD, vmapped
over seeds and noise rates, with the synthetic sweeps' stages, results and checkpoints: the
sweep engine runs them through `noisyjax.real.experiment.EXPERIMENT`.

`python -m sweeps.grid --preset real-digits` (CPU, minutes) or `--preset real-cifar2` (GPU/TPU).
See docs/real-data.md.
"""

from noisyjax.real.attributions import integrated_gradients, stage_attributions
from noisyjax.real.checkpoints import load_real_stage, sweep_config
from noisyjax.real.config import RealConfig, RealHParams
from noisyjax.real.datasets import Images, flip_labels, load, read_cifar_tarball
from noisyjax.real.models import make_model, margin
from noisyjax.real.stages import RealSnapshot, rank_auroc
from noisyjax.real.train import RealState, make_train
from noisyjax.sweep import Axis, Sweep, expand, plan, run_chunks

# A real-image sweep is a `noisyjax.sweep.Sweep` of a `RealConfig`, run by the one sweep engine;
# the names it had before the engine was shared are kept for old code.
RealAxis, RealSweep = Axis, Sweep
expand_real, plan_real, run_real_chunks = expand, plan, run_chunks

__all__ = [
    "Images",
    "RealAxis",
    "RealConfig",
    "RealHParams",
    "RealSnapshot",
    "RealState",
    "RealSweep",
    "expand_real",
    "flip_labels",
    "integrated_gradients",
    "load",
    "load_real_stage",
    "make_model",
    "make_train",
    "margin",
    "plan_real",
    "rank_auroc",
    "read_cifar_tarball",
    "run_real_chunks",
    "stage_attributions",
    "sweep_config",
]
