"""Static configuration and swept hyperparameters of the real-image experiment (docs/science.md §8).

`RealConfig` is frozen and hashable (data set, model, epochs, batch size, schedule shape),
closed over by `make_train`; `RealHParams` is a registered pytree of the scalars a sweep may vary
(learning rate, weight decay, flip rates), so one compile covers a grid of them. Validation
happens here, at the Python boundary, with the project's one-line `ConfigError`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, ClassVar

import jax

from noisyjax.errors import check_choice, check_int, check_leaves, check_real, fail

DATASETS = ("digits", "cifar2")
MODELS = ("small_cnn", "vgg11")
FLIP_MODES = ("exact", "bernoulli")
# The markers a deep network has (noisyjax.real.stages.TRACKED) and the final state.
REAL_STAGES = ("t1", "t_stage1", "t_memorize", "t_half_flipped", "t2", "t_best", "final")
REAL_DEFAULT_SNAPSHOTS = ("t1", "t2", "t_best", "final")
IMAGE_SHAPES = {"digits": (8, 8, 1), "cifar2": (32, 32, 3)}
N_CLASSES = {"digits": 10, "cifar2": 10}


@dataclasses.dataclass(frozen=True)
class RealConfig:
    """Static settings of one compiled real-image training program.

    Attributes:
      dataset: "digits" (scikit-learn's bundled 8x8 digits, offline) or "cifar2" (CIFAR-10).
      classes: the two original class ids; the first is label 0 (y = -1), the second label 1.
      n_per_class: training images per class (0: all available).
      n_test_per_class: test images per class (0: all available).
      model: "small_cnn" (CPU-sized) or "vgg11" (the paper's attribution network, BatchNorm).
      width: channels of the first convolution (VGG-11 doubles it up to 8x).
      epochs, batch_size: minibatch SGD; each epoch visits floor(n / batch_size) batches of a
        fresh permutation (the remainder is dropped for that epoch).
      momentum: SGD momentum (heavy ball, as torch.optim.SGD).
      lr_milestones, lr_gamma: the learning rate is multiplied by lr_gamma at each epoch listed.
      flip: "exact" (exactly round(tau n) labels swapped, uniformly chosen: the paper) or
        "bernoulli" (each label independently).
      class_conditional: flip with tau_plus in class 1 and tau_minus in class 0 (exact counts
        per class); otherwise tau_plus must equal tau_minus.
      eval_batch: images per forward pass when measuring (memory only).
      cifar_path: the official cifar-10-python.tar.gz ("" : $NOISYJAX_CIFAR, then the cache).
      data_dir: download cache ("" : $NOISYJAX_DATA, then ~/.cache/noisyjax).
      download: fetch CIFAR-10 into the cache when it is nowhere else (checksum verified).
      snapshot_stages: stages whose weights are kept as Orbax checkpoints.
    """

    dataset: str = "digits"
    classes: tuple[int, int] = (3, 8)
    n_per_class: int = 0
    n_test_per_class: int = 0
    model: str = "small_cnn"
    width: int = 16
    epochs: int = 60
    batch_size: int = 32
    momentum: float = 0.9
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    flip: str = "exact"
    class_conditional: bool = False
    eval_batch: int = 500
    cifar_path: str = ""
    data_dir: str = ""
    download: bool = True
    dtype: str = "float32"
    snapshot_stages: tuple[str, ...] = REAL_DEFAULT_SNAPSHOTS
    EXPERIMENT: ClassVar[str] = "real"  # run by `noisyjax.real.experiment.EXPERIMENT`

    def __post_init__(self) -> None:
        check_choice("dataset", self.dataset, DATASETS)
        object.__setattr__(self, "classes", _int_tuple("classes", self.classes))
        a, b = self.classes if len(self.classes) == 2 else (None, None)
        if a is None or a == b or not all(0 <= c < N_CLASSES[self.dataset] for c in (a, b)):
            fail("classes", self.classes, "two different class ids in [0, 9]")
        check_int("n_per_class", self.n_per_class, minimum=0)
        check_int("n_test_per_class", self.n_test_per_class, minimum=0)
        check_choice("model", self.model, MODELS)
        if self.model == "vgg11" and self.dataset != "cifar2":
            fail("model", self.model, "'small_cnn' on digits (8x8 images are too small for VGG)")
        for field in ("width", "epochs", "batch_size", "eval_batch"):
            check_int(field, getattr(self, field))
        check_real("momentum", self.momentum, 0.0, 1.0, open_high=True)
        milestones = _int_tuple("lr_milestones", self.lr_milestones)
        object.__setattr__(self, "lr_milestones", milestones)
        if any(e < 1 or e > self.epochs for e in milestones) or list(milestones) != sorted(
            set(milestones)
        ):
            fail("lr_milestones", milestones, f"increasing epochs in [1, epochs={self.epochs}]")
        check_real("lr_gamma", self.lr_gamma, 0.0, 1.0, open_low=True)
        check_choice("flip", self.flip, FLIP_MODES)
        for field in ("class_conditional", "download"):
            if not isinstance(getattr(self, field), bool):
                fail(field, getattr(self, field), "True or False")
        check_choice("dtype", self.dtype, ("float32",))
        stages = self.snapshot_stages
        if isinstance(stages, str):  # "t1,final" from the command line
            stages = tuple(s.strip() for s in stages.split(",") if s.strip())
            object.__setattr__(self, "snapshot_stages", stages)
        if len(set(stages)) != len(stages) or any(s not in REAL_STAGES for s in stages):
            fail("snapshot_stages", stages, "distinct names among " + ", ".join(REAL_STAGES))

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return IMAGE_SHAPES[self.dataset]

    def replace(self, **changes: Any) -> RealConfig:
        return dataclasses.replace(self, **changes)


def _int_tuple(field: str, value: Any) -> tuple[int, ...]:
    """A tuple of integers from a tuple, a list or '3,5' (the command line)."""
    if isinstance(value, str):
        try:
            value = tuple(int(v) for v in value.split(",") if v.strip())
        except ValueError:
            fail(field, value, "comma-separated integers")
    if not isinstance(value, (tuple, list)) or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value
    ):
        fail(field, value, "a tuple of integers")
    return tuple(int(v) for v in value)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class RealHParams:
    """Swept scalars (leaves may be floats, arrays or tracers).

    Attributes:
      lr: initial learning rate.   weight_decay: L2 coefficient added to the gradient (as torch).
      tau_plus: P(flip | label 1).   tau_minus: P(flip | label 0).
    """

    lr: Any = 0.05
    weight_decay: Any = 5e-4
    tau_plus: Any = 0.2
    tau_minus: Any = 0.2

    def __post_init__(self) -> None:
        check_leaves(self, REAL_HPARAM_RANGES)

    def replace(self, **changes: Any) -> RealHParams:
        return dataclasses.replace(self, **changes)


REAL_HPARAM_RANGES = (
    ("lr", 0.0, math.inf, True, True),
    ("weight_decay", 0.0, math.inf, False, True),
    ("tau_plus", 0.0, 0.5, False, True),
    ("tau_minus", 0.0, 0.5, False, True),
)
REAL_HPARAM_FIELDS = tuple(f.name for f in dataclasses.fields(RealHParams))
