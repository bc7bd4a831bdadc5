"""Real images (docs/science.md s. 8): binary digits and CIFAR-10, flax CNNs, optax SGD, vmapped
over seeds and noise rates, with the synthetic sweeps' stages, results and checkpoints.

`python -m sweeps.grid --preset real-digits` (CPU, minutes) or `--preset real-cifar2` (GPU/TPU).
See docs/real-data.md.
"""

from noisyjax.real.attributions import integrated_gradients, stage_attributions
from noisyjax.real.checkpoints import load_real_stage, sweep_config
from noisyjax.real.config import RealConfig, RealHParams
from noisyjax.real.datasets import Images, flip_labels, load, read_cifar_tarball
from noisyjax.real.models import make_model, margin
from noisyjax.real.stages import RealSnapshot, rank_auroc
from noisyjax.real.sweep import RealAxis, RealSweep, expand_real, plan_real, run_real_chunks
from noisyjax.real.train import RealState, make_train

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
