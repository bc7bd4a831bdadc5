"""The training loop: one `lax.scan` over logged blocks of steps, metrics as scan outputs.

`fit` trains caller-supplied weights on caller-supplied data; `make_train(cfg)` closes over the
static config and returns a pure `train(key, hp, sizes=None)` that samples data and weights from
the key (`sample_run`) and calls `fit`. Neither is jitted: callers compose `jit`, `vmap` and
sharding. Every engine runs this loop: it looks the engine's record up once
(`noisyjax.synthetic.engines.get(cfg.step_engine)`) and calls its functions to sample and prepare
the run,
for the output and the pull back of its gradient onto the parameters and onto the step's
coordinates in [mu; xi_1..xi_N], and for those coordinates given the optimizer's update.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from noisyjax.errors import fail
from noisyjax.synthetic.config import Config, HParams, Sizes
from noisyjax.synthetic.data import Batch, realized_rates
from noisyjax.synthetic.decomposition import (
    Geometry,
    coefficient_increments,
    from_coordinates,
    geometry,
    projected_coordinates,
    step_norms,
    subset_noise_norm,
)
from noisyjax.synthetic.engines import AnyBatch, Engine, get
from noisyjax.synthetic.metrics import measure, test_error_counts
from noisyjax.synthetic.model import SIGNS_J, Params
from noisyjax.synthetic.stages import NEVER, Stages, StepParts, init_stages, observe, summary

Metrics = dict[str, jax.Array]


class TrainState(NamedTuple):
    """The scan carry: weights, optimizer state and the exact decomposition coefficients.

    Every field is an array (or a tree of arrays) on every engine and configuration, inside the
    loop too; only `params` and `opt_state` hold the engine's own representation (W, or C and
    P). An engine that accumulates gamma and rho (`Engine.accumulates`, dense) keeps them up to
    date step by step; on the others (gram, wishart) they are zeros inside the loop and are read
    off the coefficients C where needed (`decomposition`, exact). The state `fit` returns holds
    them on every engine.
    """

    params: Params
    opt_state: Any
    gamma: jax.Array  # (J, M)
    rho_bar: jax.Array  # (J, M, N): rho where j = y_obs_i (>= 0 under GD)
    rho_under: jax.Array  # (J, M, N): rho where j = -y_obs_i (<= 0 under GD)
    step: jax.Array  # () int32
    stages: Stages | None = None  # transition times, probes and snapshots (set by `init_state`)
    diverged_at: jax.Array | None = None  # () int32: first step with a non-finite loss, or -1

    @property
    def rho(self) -> jax.Array:
        return self.rho_bar + self.rho_under

    def decomposition(
        self, engine: Engine, geom: Geometry, train: AnyBatch
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(gamma, rho_bar, rho_under): the accumulated ones, else read off C."""
        if engine.accumulates:
            return self.gamma, self.rho_bar, self.rho_under
        return from_coordinates(self.params[engine.weights], geom, train.y_obs)


def uses_step_keys(cfg: Config) -> bool:
    """Whether a run draws randomness at every step: minibatches (sgd) or label-noise GD."""
    return cfg.optimizer == "sgd" or cfg.label_noise_gd


def optimizer(cfg: Config, eta: jax.Array) -> optax.GradientTransformation:
    """Constant-step GD/SGD (the theory) or Adam; eta may be traced, so build inside the trace."""
    return optax.adam(eta) if cfg.optimizer == "adam" else optax.sgd(eta)


def step_labels_and_weights(
    key: jax.Array | None, train: AnyBatch, cfg: Config, hp: HParams
) -> tuple[jax.Array, jax.Array]:
    """Labels this step trains on and per-sample loss weights (1/n, or 1/B on a minibatch).

    `key` is this step's key; None on runs that draw nothing per step (`uses_step_keys`)."""
    k_relabel, k_batch = jax.random.split(key) if uses_step_keys(cfg) else (None, None)
    labels_N = train.y_obs
    if cfg.label_noise_gd:  # label-noise GD: fresh independent flips at every step
        flip_N = jax.random.bernoulli(k_relabel, hp.relabel_rate, labels_N.shape)
        labels_N = jnp.where(flip_N, -labels_N, labels_N)
    dtype = labels_N.dtype
    if cfg.optimizer != "sgd":
        return labels_N, train.mask.astype(dtype) / jnp.sum(train.mask).astype(dtype)
    score_N = jnp.where(train.mask, jax.random.uniform(k_batch, labels_N.shape), jnp.inf)
    rank_N = jnp.argsort(jnp.argsort(score_N))
    in_batch_N = (rank_N < cfg.batch_size) & train.mask  # padding never takes a batch slot
    return labels_N, in_batch_N.astype(dtype) / cfg.batch_size


def evaluated_wrong(state: TrainState, test: AnyBatch, cfg: Config) -> dict[str, jax.Array]:
    """Test-error counts of W(t) on evaluation steps (every cfg.eval_every steps), else the
    latest ones; a logged step was just counted by `fit`'s log point, which they reuse. t_best
    compares these whole counts, never fractions, so no compiler's rounding of a division
    decides it (on jax 0.10 two programs rounded 10/100 differently)."""
    # The step counter is not batched under vmap, so this stays a real branch.
    fresh = (state.step % cfg.eval_every == 0) & (state.step % cfg.log_every != 0)
    return jax.lax.cond(
        fresh, lambda: test_error_counts(state.params, test, cfg), lambda: state.stages.wrong
    )


def train_step(
    state: TrainState,
    key: jax.Array | None,
    train: AnyBatch,
    test: AnyBatch,
    geom: Geometry,
    engine: Engine,
    cfg: Config,
    hp: HParams,
    opt: optax.GradientTransformation,
) -> TrainState:
    """One optimisation step with the coefficient bookkeeping of docs/science.md section 4,
    after checking the stage markers on the state it starts from (`noisyjax.synthetic.stages`)."""
    step_key = jax.random.fold_in(key, state.step) if uses_step_keys(cfg) else None
    labels_N, weight_N = step_labels_and_weights(step_key, train, cfg, hp)
    f_N, backward = engine.forward(state.params, train, cfg)
    z_N = labels_N * f_N
    loss = jnp.sum(weight_N * jax.nn.softplus(-z_N))  # logistic loss l(z) = log(1 + e^-z)
    grads, dc_JMK = backward(weight_N * labels_N * -jax.nn.sigmoid(-z_N))  # l'(z) = -1/(1+e^z)
    with jax.numpy_dtype_promotion("standard"):  # optax mixes int counters and floats
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
    # The step's coordinates u in [mu; xi_1..xi_N]: W moves by u V.
    if not cfg.exact_recursion:  # Adam leaves the span (dense only): least-squares coordinates
        u_JMK = projected_coordinates(updates[engine.weights], geom)
    else:
        u_JMK = engine.step_coordinates(updates, dc_JMK, jnp.asarray(hp.eta, f_N.dtype))
    signal, noise = step_norms(u_JMK, geom, engine.moved_projections(updates))
    parts = StepParts(signal, noise, subset_noise_norm(u_JMK, geom, train.flipped & train.mask))
    z_obs_N = z_N if not cfg.label_noise_gd else train.y_obs * f_N
    wrong = evaluated_wrong(state, test, cfg)
    stages = observe(state.stages, state, z_obs_N, wrong, parts, train, test, geom, cfg)
    state = state._replace(
        params=optax.apply_updates(state.params, updates),
        opt_state=opt_state,
        step=state.step + 1,
        stages=stages,
        diverged_at=divergence(state, loss),
    )
    if not engine.accumulates:  # gamma and rho are read off C (`TrainState.decomposition`)
        return state
    dgamma_JM, drho_JMN = coefficient_increments(u_JMK, geom)
    # Split by label, rho_bar = rho 1(j = y_obs_i) (Huang et al. 2025, section 4.1): under GD
    # with fixed labels every increment where j = y_obs_i is >= 0 and the others <= 0, so this is
    # also the split by sign; under label-noise GD increments change sign and rho_bar can fall.
    own_JN = (jnp.asarray(SIGNS_J, drho_JMN.dtype)[:, None] * train.y_obs[None, :]) > 0
    rho_bar = state.rho_bar + jnp.where(own_JN[:, None], drho_JMN, 0.0)
    rho_under = state.rho_under + jnp.where(own_JN[:, None], 0.0, drho_JMN)
    return state._replace(gamma=state.gamma + dgamma_JM, rho_bar=rho_bar, rho_under=rho_under)


def divergence(state: TrainState, loss: jax.Array) -> jax.Array:
    """The first step whose training loss is NaN or inf (the weights have blown up), else -1."""
    first = (state.diverged_at == NEVER) & ~jnp.isfinite(loss)
    return jnp.where(first, state.step, state.diverged_at)


def mask_diverged(metrics: Metrics, diverged_at: jax.Array) -> Metrics:
    """NaN for every float metric logged at or after the step where the run diverged."""
    after_T = (diverged_at != NEVER) & (metrics["step"] >= diverged_at)

    def mask(v: jax.Array) -> jax.Array:
        after = after_T.reshape(after_T.shape + (1,) * (v.ndim - 1))  # per-sample trajectories
        return jnp.where(after, jnp.nan, v) if jnp.issubdtype(v.dtype, jnp.floating) else v

    return {name: mask(v) for name, v in metrics.items()}


def init_state(
    params: Params,
    opt: optax.GradientTransformation,
    train: AnyBatch,
    test: AnyBatch,
    cfg: Config,
) -> TrainState:
    """The carry at step 0 of prepared `params`: gamma and rho zero on every engine, no stage
    marker hit yet (`noisyjax.synthetic.stages.init_stages`), not diverged."""
    dtype = train.y.dtype
    zeros_JMN = jnp.zeros((2, cfg.m, train.y.shape[0]), dtype)
    with jax.numpy_dtype_promotion("standard"):
        opt_state = opt.init(params)
    state = TrainState(
        params,
        opt_state,
        jnp.zeros((2, cfg.m), dtype),
        zeros_JMN,
        zeros_JMN,
        jnp.zeros((), jnp.int32),
        diverged_at=jnp.asarray(NEVER, jnp.int32),
    )
    return state._replace(stages=init_stages(state, cfg, train, test))


def fit(
    params: Params,
    train: Batch,
    test: Batch,
    cfg: Config,
    hp: HParams,
    *,
    key: jax.Array | None = None,
    val: Batch | None = None,
) -> tuple[TrainState, Metrics]:
    """Train `params` on `train` for cfg.steps steps, measuring every cfg.log_every steps.

    `params` and the batches are as drawn (`sample_run`: {"w": (J, M, D)}, x in R^D, or the
    wishart engine's reduced coordinates); the engine prepares them once (`Engine.prepare`: on
    gram and wishart the projections of `noisyjax.synthetic.engines.to_gram`, and the returned
    state holds
    the coefficients {"c": C} of W(t) = W(0) + C V, which `noisyjax.synthetic.engines.filters`
    rebuilds).
    Returns the final state (with its stage transitions and snapshots) and a dict of metrics:
    trajectories with leading axis cfg.n_logs (step 0 included), and per-run scalars for the
    stage transitions (`noisyjax.synthetic.stages.summary`).

    Args:
      key: drives the per-step randomness: minibatches (optimizer "sgd") and label-noise GD
        need one, and a missing key there is a `ConfigError`; full-batch GD (and Adam) draws
        nothing per step and ignores it.
      val: an optional held-out set with noisy labels (val_err metrics).
    """
    if key is None and uses_step_keys(cfg):
        fail(
            "key",
            key,
            "a JAX random key (jax.random.key(seed)) with optimizer 'sgd' or label_noise_gd, "
            "which draw per-step randomness",
        )
    engine = get(cfg.step_engine)
    params, train, test, val = engine.prepare(params, train, test, val)
    geom = geometry(train, cfg)
    opt = optimizer(cfg, hp.eta)
    state0 = init_state(params, opt, train, test, cfg)

    def log_point(state: TrainState) -> tuple[TrainState, Metrics]:
        wrong = test_error_counts(state.params, test, cfg)  # for the log and for the markers
        decomposition = state.decomposition(engine, geom, train)
        metrics = measure(state.params, *decomposition, train, test, geom, cfg, hp, val, wrong)
        return state._replace(stages=state.stages.replace(wrong=wrong)), {
            "step": state.step,
            **metrics,
        }

    def block(state: TrainState, index: jax.Array) -> tuple[TrainState, Metrics]:
        # Block 0 takes no step, so step 0 is logged by the same (single) copy of `measure`.
        n_steps = jnp.where(index == 0, 0, cfg.log_every)
        state = jax.lax.fori_loop(
            0,
            n_steps,
            lambda _, s: train_step(s, key, train, test, geom, engine, cfg, hp, opt),
            state,
        )
        return log_point(state)

    state, metrics = jax.lax.scan(block, state0, jnp.arange(cfg.n_logs, dtype=jnp.int32))
    # The final state is checked too; no step is taken from it, so it has no t_cross.
    z_N = train.y_obs * engine.outputs(state.params, train, cfg)
    final_wrong = state.stages.wrong  # the final step is a logged one: counted there
    final_loss = jnp.sum(jnp.where(train.mask, jax.nn.softplus(-z_N), 0.0))
    state = state._replace(
        stages=observe(state.stages, state, z_N, final_wrong, None, train, test, geom, cfg),
        diverged_at=divergence(state, final_loss),
    )
    if not engine.accumulates:  # the returned state and snapshots hold gamma and rho read off C
        state = with_decomposition(state, engine, geom, train)
    divergence_summary = {
        "diverged": state.diverged_at != NEVER,
        "diverged_step": state.diverged_at,
    }
    metrics = mask_diverged(metrics, state.diverged_at)
    per_sample = (
        {"sample_flipped": train.flipped, "sample_label": train.y_obs} if cfg.log_samples else {}
    )
    stage_summary = summary(state.stages, train, test, cfg)
    return state, {**metrics, **stage_summary, **divergence_summary, **per_sample}


def with_decomposition(
    state: TrainState, engine: Engine, geom: Geometry, train: AnyBatch
) -> TrainState:
    """The state, and its snapshots, with gamma and rho read off their coefficients C."""
    kept = state.stages.kept
    if kept is not None:
        coefficients = jax.vmap(from_coordinates, (0, None, None))
        gamma, rho_bar, rho_under = coefficients(kept.w, geom, train.y_obs)
        kept = kept._replace(gamma=gamma, rho_bar=rho_bar, rho_under=rho_under)
    gamma, rho_bar, rho_under = state.decomposition(engine, geom, train)
    return state._replace(
        gamma=gamma,
        rho_bar=rho_bar,
        rho_under=rho_under,
        stages=state.stages.replace(kept=kept),
    )


def sample_run(
    key: jax.Array, cfg: Config, hp: HParams, sizes: Sizes | None = None
) -> tuple[Params, Batch, Batch, Batch | None]:
    """A run's initial weights, training, test and validation sets (None without n_val), drawn
    from its data and init keys by its engine (`Engine.sample_run`): in R^d, or, on the wishart
    engine, in the span they act on.

    Vmapped over runs (a sweep's chunk), an engine's draw in R^d loops over the runs on a CPU
    (`Engine.loop_draw`, `jax.custom_batching.sequential_vmap`) and stays vmapped elsewhere. The
    numbers are the same bit for bit; on a CPU, XLA's threefry vmapped over runs and samples at
    once draws them up to 1.9 times slower than one run at a time, and compiles more slowly
    (docs/performance.md, "Drawing the runs").
    """
    k_data, k_init = jax.random.split(key, 3)[:2]
    engine = get(cfg.step_engine)
    if not engine.loop_draw:
        return engine.sample_run(k_data, k_init, cfg, hp, sizes)

    # The leaves travel flat: the batching machinery rebuilds pytrees with placeholder leaves,
    # which HParams' range check would refuse.
    leaves, tree = jax.tree.flatten((k_data, k_init, hp, sizes))

    def draw(*leaves: jax.Array) -> Any:
        k_data, k_init, hp, sizes = jax.tree.unflatten(tree, leaves)
        return engine.sample_run(k_data, k_init, cfg, hp, sizes)

    return jax.lax.platform_dependent(
        *leaves, cpu=jax.custom_batching.sequential_vmap(draw), default=draw
    )


def make_train(cfg: Config) -> Callable[..., tuple[TrainState, Metrics]]:
    """Return the pure `train(key, hp, sizes=None)` of one static configuration."""

    def train(
        key: jax.Array, hp: HParams, sizes: Sizes | None = None
    ) -> tuple[TrainState, Metrics]:
        params, train_set, test_set, val_set = sample_run(key, cfg, hp, sizes)
        k_steps = jax.random.split(key, 3)[2]
        state, metrics = fit(params, train_set, test_set, cfg, hp, key=k_steps, val=val_set)
        return state, {**metrics, **realized_rates(train_set)}

    return train
