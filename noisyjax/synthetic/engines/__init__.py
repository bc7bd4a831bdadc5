"""Step engines: how a run is sampled, prepared, evaluated and stepped, as a registry of records.

The one training loop (`noisyjax.synthetic.train.fit`) needs the network output f of a batch and,
for the
gradient step, the pull back of d loss / d f onto the trainable parameters and onto the step's
coordinates in the basis V = [mu; xi_1; ...; xi_N] (docs/science.md section 4's decomposition).
An engine is an `Engine` record of the functions that provide them for one representation of the
filters, optax-style (a NamedTuple of functions, no classes to subclass):

dense    `noisyjax.synthetic.engines.dense`: filters W (J, M, D) in R^d, batches `noisyjax.Batch`;
         O(m n d) per step; gamma and rho accumulate step by step.
gram     `noisyjax.synthetic.engines.gram`: the same data, projected once (`to_gram`) and trained in
         coefficient space, W(t) = W(0) + C V; O(m n^2) per step; gamma and rho read off C.
wishart  `noisyjax.synthetic.engines.wishart`: the data drawn in the span it acts on
(Bartlett-decomposed
         Wishart Gram matrices, cost independent of d), then stepped exactly like gram.

The loop, the metrics, the stage markers and the decomposition look the record up by name
(`get(cfg.step_engine)`) and call its functions; none of them tests batch types or parameter
names.

Adding an engine: write one module `noisyjax/synthetic/engines/<name>.py` with the functions of an
`Engine` (reuse dense's or gram's where they apply, as wishart reuses gram's stepping) and add
one line to `REGISTRY`; its name also goes into `noisyjax.synthetic.config.ENGINES`, the list the
configuration and the command line accept (a test checks that the two agree), with any setting it
cannot run checked in `Config.__post_init__`.

The names `GramBatch`, `GramBasis`, `AnyBatch`, `to_gram`, `forward`, `outputs` and `filters`
stay importable from here; `forward` and `outputs` dispatch through the registry on
`cfg.step_engine`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax

from noisyjax.synthetic.config import Config
from noisyjax.synthetic.data import Batch
from noisyjax.synthetic.engines import dense, gram, wishart
from noisyjax.synthetic.engines.dense import Backward, Memory, Run
from noisyjax.synthetic.engines.gram import GramBasis, GramBatch, to_gram
from noisyjax.synthetic.model import Params

AnyBatch = Batch | GramBatch | GramBasis


class Engine(NamedTuple):
    """What the training loop asks of an engine (shape letters of
    `noisyjax.synthetic.engines.gram`).

    Attributes:
      name: the `Config.engine` value that selects it.
      sample_run: (k_data, k_init, cfg, hp, sizes) -> (params0, train, test, val): a run's
        initial weights and data sets as drawn (in R^d, or wishart's reduced coordinates).
      prepare: (params0, train, test, val) -> the same in the engine's own coordinates (dense:
        unchanged; gram and wishart: `to_gram`'s projections, once per run).
      forward: (params, train, cfg) -> (f (N,), backward): the training set's output and the pull
        back of d loss / d f onto the parameters and onto the step's coordinates dC (J, M, K).
      outputs: (params, batch, cfg) -> f (N,) on any of the engine's prepared batches.
      step_coordinates: (updates, dC, eta) -> u (J, M, K): the coordinates in V of a (minibatch)
        GD step, W moving by u V (docs/science.md section 4).
      moved_projections: (updates) -> how the step moves carried projections P = <W, V>, or None
        where the engine carries none (`noisyjax.synthetic.decomposition.step_norms`).
      filters: (params, params0, train) -> W (J, M, D), from the drawn params0 and training set.
      train_grams: (prepared train) -> (||mu||^2, <xi_i, xi_k> (N, N), <mu, xi_i> (N,)).
      memory: (cfg) -> `Memory`, the engine-specific terms of the memory model.
      weights: the params entry holding what the engine trains, in its own coordinates (W on
        dense, C on gram): what a stage snapshot keeps.
      accumulates: True when gamma and rho accumulate step by step in the training state; False
        when they are read off `params[weights]` where needed (`from_coordinates`: exact for
        coefficients C) and the state holds zeros inside the loop.
      loop_draw: on a CPU, draw vmapped runs one after another (`noisyjax.synthetic.train.
        sample_run`; the same numbers): True where a run's draw is in R^d, which XLA's threefry
        computes faster one run at a time; False on wishart, whose small draws are faster
        vectorized (docs/performance.md, "Drawing the runs").
    """

    name: str
    sample_run: Callable[..., Run]
    prepare: Callable[..., Run]
    forward: Callable[..., tuple[jax.Array, Backward]]
    outputs: Callable[..., jax.Array]
    step_coordinates: Callable[..., jax.Array]
    moved_projections: Callable[[Params], jax.Array | None]
    filters: Callable[..., jax.Array]
    train_grams: Callable[..., tuple[jax.Array, jax.Array, jax.Array]]
    memory: Callable[[Config], Memory]
    weights: str
    accumulates: bool
    loop_draw: bool


DENSE = Engine(
    "dense",
    dense.sample_run,
    dense.prepare,
    dense.forward,
    dense.outputs,
    dense.step_coordinates,
    dense.moved_projections,
    dense.filters,
    dense.train_grams,
    dense.memory,
    weights="w",
    accumulates=True,
    loop_draw=True,
)
GRAM = Engine(
    "gram",
    dense.sample_run,  # the very vectors the dense engine draws
    gram.prepare,
    gram.forward,
    gram.outputs,
    gram.step_coordinates,
    gram.moved_projections,
    gram.filters,
    gram.train_grams,
    gram.memory,
    weights="c",
    accumulates=False,
    loop_draw=True,
)
REGISTRY: dict[str, Engine] = {
    "dense": DENSE,
    "gram": GRAM,
    "wishart": GRAM._replace(
        name="wishart", sample_run=wishart.sample_run, memory=wishart.memory, loop_draw=False
    ),
}


def get(name: str) -> Engine:
    """The registered engine `name` (a resolved `Config.step_engine`, never "auto")."""
    return REGISTRY[name]


def forward(params: Params, train: AnyBatch, cfg: Config) -> tuple[jax.Array, Backward]:
    """`Engine.forward` of the engine `cfg` runs."""
    return get(cfg.step_engine).forward(params, train, cfg)


def outputs(params: Params, batch: AnyBatch, cfg: Config) -> jax.Array:
    """The network output f(W, x) of every sample (N,), on the engine `cfg` runs."""
    return get(cfg.step_engine).outputs(params, batch, cfg)


def filters(params: Params, params0: Params, train: Batch, engine: str = "gram") -> jax.Array:
    """W(t) as (J, M, D) filters from the params of `engine`: W(0) + C V for coefficient-space
    params {"c": C} (gram and wishart, the default: what their snapshots keep), params["w"] on
    dense. `params0` and `train` are the run as drawn (`noisyjax.synthetic.train.sample_run`)."""
    return get(engine).filters(params, params0, train)


__all__ = [
    "REGISTRY",
    "AnyBatch",
    "Backward",
    "Engine",
    "GramBasis",
    "GramBatch",
    "Memory",
    "filters",
    "forward",
    "get",
    "outputs",
    "to_gram",
]
