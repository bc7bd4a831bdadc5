"""Static configuration and swept hyperparameters (docs/science.md sections 2-3).

`Config` is frozen and hashable: shapes, step counts and model choices, closed over by
`make_train` so that one configuration is one compiled program. `HParams` is a registered pytree
of scalars: every field can become a sweep axis, so one compile covers a whole grid. `Sizes`
carries the active (n, d) of a run padded into a larger compiled shape.

Validation happens here, at the Python boundary, once; traced code never validates.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from noisyjax.errors import (
    check_choice,
    check_int,
    check_leaves,
    check_real,
    fail,
)

ACTIVATIONS = ("relu", "relu_q", "leaky_relu")
NOISE_KINDS = ("orthogonal", "isotropic")
SIGNAL_KINDS = ("e1", "random")
FLIP_MODES = ("bernoulli", "exact", "exact_total")
OPTIMIZERS = ("gd", "sgd", "adam")
DTYPES = ("float32", "float64")
ENGINES = ("dense", "gram", "wishart", "auto")
INITS = ("gaussian", "torch")
OUTPUT_SCALES = ("paper", "kou")


def wishart_min_d(m: int) -> int:
    """The least d the wishart engine can sample in: the 2m filters and the signal direction
    need 2m + 1 orthogonal directions besides the one the noise Bartlett factor starts from."""
    return 2 * m + 2


# The stage markers of docs/stages.md, in the order a two-stage run usually meets them.
TRANSITION_NAMES = (
    "t1",
    "t_stage1",
    "t_clean",
    "t_overtake",
    "t_cross_flipped",
    "t_half_flipped",
    "t_memorize",
    "t2",
    "t_best",
    "t_cross",
)
STAGE_NAMES = TRANSITION_NAMES + ("final",)
# Snapshots kept unless asked otherwise: the Stage-I window's ends, the fits, the oracle stop.
DEFAULT_SNAPSHOTS = ("t1", "t_stage1", "t_memorize", "t2", "t_best", "t_cross", "final")
# Mean clean training loss that ends Stage I on the loss scale (t_clean): a clean margin of
# log(1 / (e^0.3 - 1)) = 1.05, where -l' has fallen from 1/2 to 0.26 (docs/stages.md).
CLEAN_LOSS_LEVEL = 0.3


@dataclasses.dataclass(frozen=True)
class Config:
    """Static settings of one compiled training program.

    Attributes:
      n, d, m: training samples, dimension, filters per output sign.
      steps, log_every: optimisation steps; metrics are recorded every `log_every` steps (and at 0).
      n_test: fresh test samples drawn from the same distribution.
      activation: "relu" (the paper), "relu_q" (max(0, z)^q, Cao et al. 2022), "leaky_relu".
      noise: "orthogonal" (xi orthogonal to mu, the default) or "isotropic".
      signal: "e1" (mu = ||mu|| e_1) or "random" (a uniformly random direction).
      flip: "bernoulli" (independent flips), "exact" (exactly round(tau n_class) per class) or
        "exact_total" (int(tau n) over the whole set, the authors' code; `data.flip_mask`).
      optimizer: "gd" (full batch, the theory), "sgd" (minibatches of `batch_size`), "adam".
      label_noise_gd: re-flip the observed labels independently at every step with probability
        `HParams.relabel_rate` (label-noise GD, arXiv 2510.17526).
      dtype: "float32" (default) or "float64" (needs `jax_enable_x64`).
      engine: how a run is sampled and stepped (docs/engines.md): "dense" (filters in R^d),
        "gram" (the same data, steps in coefficient space, O(m n^2) per step), "wishart" (noise
        and Gaussian filters drawn in the span they act on, Bartlett decomposition: cost
        independent of d), "auto" (the cheapest the setting allows, `step_engine`).
      n_val: held-out validation samples with noisy labels (0: none); adds val_err metrics.
      log_samples: also log every training sample's loss (`sample_loss`, per logged step).
      bias: a trainable bias per filter inside the activation, act(<w, x_p> + b) (Kou et al.).
      init: "gaussian" (w ~ N(0, sigma_0^2 I), the paper) or "torch" (PyTorch's default for
        Conv1d(1, 2m, kernel d): weights and bias uniform in +-1/sqrt(d); sigma_0 unused).
      output_scale: "paper" (second layer +-1/m) or "kou" (each class logit sums its m filters'
        mean over the two patches: f = (m/2) f_paper, Kou et al. 2023).
      eval_every: the test error (for t_best) is evaluated every `eval_every` steps and at
        every logged step; 1 is exact.
      snapshot_stages: the stages whose weights and coefficients are kept (any of
        TRANSITION_NAMES and "final"; default DEFAULT_SNAPSHOTS); each costs one copy of the
        filters per run.
      clean_loss_level: t_clean is the first step with mean clean training loss below it.
    """

    n: int = 200
    d: int = 2000
    m: int = 20
    steps: int = 1000
    log_every: int = 10
    n_test: int = 1000
    activation: str = "relu"
    q: float = 3.0
    leaky_slope: float = 0.1
    noise: str = "orthogonal"
    signal: str = "e1"
    flip: str = "bernoulli"
    optimizer: str = "gd"
    batch_size: int = 32
    label_noise_gd: bool = False
    dtype: str = "float32"
    engine: str = "dense"
    n_val: int = 0
    log_samples: bool = False
    bias: bool = False
    init: str = "gaussian"
    output_scale: str = "paper"
    eval_every: int = 1
    snapshot_stages: tuple[str, ...] = DEFAULT_SNAPSHOTS
    clean_loss_level: float = CLEAN_LOSS_LEVEL

    def __post_init__(self) -> None:
        for field in ("n", "d", "m", "steps", "log_every", "n_test"):
            check_int(field, getattr(self, field))
        if self.steps % self.log_every:
            fail("log_every", self.log_every, f"a divisor of steps={self.steps}")
        check_choice("activation", self.activation, ACTIVATIONS)
        check_real("q", self.q, 1.0, 16.0, open_low=True)
        check_real("leaky_slope", self.leaky_slope, 0.0, 1.0, open_high=True)
        check_choice("noise", self.noise, NOISE_KINDS)
        if self.noise == "orthogonal" and self.d < 2:
            fail("d", self.d, "an integer >= 2 with noise 'orthogonal' (xi is orthogonal to mu)")
        check_choice("signal", self.signal, SIGNAL_KINDS)
        check_choice("flip", self.flip, FLIP_MODES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.optimizer == "adam" and self.d < self.n + 1:
            fail("d", self.d, f"an integer >= n + 1 = {self.n + 1} with optimizer 'adam'")
        check_int("batch_size", self.batch_size)
        if self.optimizer == "sgd" and self.batch_size > self.n:
            fail(
                "batch_size", self.batch_size, f"an integer in [1, n={self.n}] with optimizer 'sgd'"
            )
        if not isinstance(self.label_noise_gd, bool):
            fail("label_noise_gd", self.label_noise_gd, "True or False")
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("engine", self.engine, ENGINES)
        if self.engine in ("gram", "wishart") and self.optimizer == "adam":
            fail(
                "engine",
                self.engine,
                "'dense' or 'auto' with optimizer 'adam' (Adam leaves span{mu, xi_i})",
            )
        if self.engine == "wishart" and self.d < wishart_min_d(self.m):
            fail(
                "d",
                self.d,
                f"an integer >= 2 m + 2 = {wishart_min_d(self.m)} with engine 'wishart'",
            )
        check_int("n_val", self.n_val, minimum=0)
        for flag in ("log_samples", "bias"):
            if not isinstance(getattr(self, flag), bool):
                fail(flag, getattr(self, flag), "True or False")
        check_choice("init", self.init, INITS)
        check_choice("output_scale", self.output_scale, OUTPUT_SCALES)
        check_int("eval_every", self.eval_every)
        check_real("clean_loss_level", self.clean_loss_level, 0.0, math.log(2.0), open_low=True)
        stages = self.snapshot_stages
        if isinstance(stages, str):  # "t1,final" from the command line
            stages = tuple(s.strip() for s in stages.split(",") if s.strip())
            object.__setattr__(self, "snapshot_stages", stages)
        if (
            not isinstance(stages, tuple)
            or len(set(stages)) != len(stages)
            or any(s not in STAGE_NAMES for s in stages)
        ):
            fail("snapshot_stages", stages, "distinct names among " + ", ".join(STAGE_NAMES))

    @property
    def n_logs(self) -> int:
        """Logged points per run, step 0 included."""
        return self.steps // self.log_every + 1

    @property
    def float_dtype(self) -> jnp.dtype:
        if self.dtype == "float64" and not jax.config.jax_enable_x64:
            fail("dtype", self.dtype, "'float32', or 'float64' after jax_enable_x64 is set")
        return jnp.dtype(self.dtype)

    @property
    def exact_recursion(self) -> bool:
        """Whether gamma and rho follow the exact GD recursion (docs/science.md section 4)."""
        return self.optimizer in ("gd", "sgd")

    @property
    def step_engine(self) -> str:
        """The engine that runs: `engine`, with "auto" resolved from the shapes.

        Per step, dense costs O(m n d) and gram O(m n^2); wishart steps like gram and samples
        in 1 + 2m + n dimensions instead of d. "auto" takes wishart when that is smaller than d
        (and the optimizer stays in the span), else dense.
        """
        if self.engine != "auto":
            return self.engine
        if self.optimizer == "adam" or self.d <= self.reduced_d or self.d < wishart_min_d(self.m):
            return "dense"
        return "wishart"

    @property
    def reduced_d(self) -> int:
        """Dimension of the span the wishart engine samples in: u, 2m filters, n noise vectors."""
        return 1 + 2 * self.m + self.n

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class HParams:
    """Swept scalars: a pytree whose leaves may be Python floats, arrays or tracers.

    Attributes:
      eta: step size.
      tau_plus: P(y_obs = -1 | y = +1).   tau_minus: P(y_obs = +1 | y = -1).
      mu_norm: ||mu||.   sigma_p: noise scale.   sigma_0: initialisation scale.
      relabel_rate: per-step flip probability of label-noise GD (used only when switched on).
    """

    eta: Any = 0.05
    tau_plus: Any = 0.2
    tau_minus: Any = 0.2
    mu_norm: Any = 7.0
    sigma_p: Any = 1.0
    sigma_0: Any = 0.01
    relabel_rate: Any = 0.1

    def __post_init__(self) -> None:
        check_leaves(self, HPARAM_RANGES)

    def replace(self, **changes: Any) -> HParams:
        return dataclasses.replace(self, **changes)


# (field, low, high, open_low, open_high): the allowed range of each hyperparameter.
HPARAM_RANGES = (
    ("eta", 0.0, math.inf, True, True),
    ("tau_plus", 0.0, 0.5, False, True),
    ("tau_minus", 0.0, 0.5, False, True),
    ("mu_norm", 0.0, math.inf, False, True),
    ("sigma_p", 0.0, math.inf, True, True),
    ("sigma_0", 0.0, math.inf, False, True),
    ("relabel_rate", 0.0, 0.5, False, True),
)
HPARAM_FIELDS = tuple(f.name for f in dataclasses.fields(HParams))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Sizes:
    """Active sample count and dimension of a run padded into a `Config` of larger n and d."""

    n: Any
    d: Any

    @classmethod
    def full(cls, cfg: Config) -> Sizes:
        return cls(n=jnp.asarray(cfg.n, jnp.int32), d=jnp.asarray(cfg.d, jnp.int32))
