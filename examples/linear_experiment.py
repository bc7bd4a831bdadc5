"""A third experiment family: logistic regression on two Gaussian clusters with flipped labels,
run by the sweep engine like the built-in ones (docs/architecture.md). Run it with
`python examples/linear_experiment.py [OUT]`: a 3 tau x 2 seed sweep."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

import noisyjax as nj
from noisyjax.errors import check_int, check_real
from noisyjax.sweep import experiment

F32 = jnp.float32


@dataclasses.dataclass(frozen=True)
class LinearConfig:  # static: closed over by the compiled program
    n: int = 200
    d: int = 20
    steps: int = 200
    EXPERIMENT: ClassVar[str] = "linear"

    def __post_init__(self) -> None:  # every rule lives in the constructors
        for field in ("n", "d", "steps"):
            check_int(field, getattr(self, field))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LinearHParams:  # swept: a pytree of scalars
    eta: Any = 0.5
    tau: Any = 0.2

    def __post_init__(self) -> None:  # numbers are checked; traced leaves pass through
        if isinstance(self.eta, float):
            check_real("eta", self.eta, 0.0, 10.0, open_low=True)
        if isinstance(self.tau, float):
            check_real("tau", self.tau, 0.0, 0.5, open_high=True)


class Weights(NamedTuple):  # a snapshot: what the chunk store keeps per stage
    w: jax.Array


def make_run(cfg: LinearConfig):
    def run(inputs, shared):
        seed, hp = inputs
        k_y, k_x, k_flip = jax.random.split(jax.random.key(seed), 3)
        y_N = jnp.where(jax.random.bernoulli(k_y, 0.5, (cfg.n,)), 1.0, -1.0).astype(F32)
        mu_D = jnp.zeros(cfg.d, F32).at[0].set(2.0)
        x_ND = y_N[:, None] * mu_D[None, :] + jax.random.normal(k_x, (cfg.n, cfg.d), F32)
        flipped_N = jax.random.bernoulli(k_flip, hp.tau, (cfg.n,))
        y_obs_N = jnp.where(flipped_N, -y_N, y_N)

        def step(w_D, _):  # GD on the logistic loss of the observed labels
            z_N = y_obs_N * (x_ND @ w_D)
            grad_D = -(y_obs_N * jax.nn.sigmoid(-z_N)) @ x_ND / cfg.n
            fit_N = (z_N > 0).astype(F32)
            return w_D - hp.eta * grad_D, {
                "train_loss": jnp.mean(jax.nn.softplus(-z_N)),
                "train_acc_clean": nj.synthetic.metrics.masked_mean(fit_N, ~flipped_N),
                "train_acc_noisy": nj.synthetic.metrics.masked_mean(fit_N, flipped_N),
            }

        w_D, metrics = jax.lax.scan(step, jnp.zeros(cfg.d, F32), None, length=cfg.steps)
        metrics["step"] = jnp.arange(cfg.steps)
        metrics["flip_rate_realized"] = jnp.mean(flipped_N.astype(F32))
        return metrics, {"final": Weights(w_D)}

    return run


EXPERIMENT = experiment.Experiment(  # the defaults: one bucket, seed and hp as run inputs
    name="linear",
    config_type=LinearConfig,
    hparams_type=LinearHParams,
    make_run=make_run,
    samples=lambda cfg: cfg.n,
    bytes_per_run=lambda cfg: 4 * (cfg.n * cfg.d + 10 * cfg.steps),
    output_bytes=lambda cfg: 4 * (4 * cfg.steps + cfg.d),
    snapshot_bytes=lambda cfg: 4 * cfg.d,
    stages=("final",),
    time="step",
)
experiment.register("linear", __name__)

if __name__ == "__main__":
    sweep = nj.Sweep(
        "linear", LinearConfig(), LinearHParams(), (nj.Axis("tau", (0.0, 0.2, 0.4)),), 2
    )
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "checkpoints/linear-example")
    ds = nj.run_sweep(nj.plan(sweep), out, progress=False)
    print(ds["train_acc_noisy"].isel(step=-1).mean("seed").to_series())
