"""Stage markers detected inside the compiled run (docs/stages.md, docs/science.md section 5).

Each marker is the first step t at which a condition holds on the state W(t), checked before the
step from W(t) is taken (and once on the final state). With F the flipped and C the clean
training samples, z_i = y_obs_i f(W(t), x_i) and l_i = log(1 + exp(-z_i)):
  t1              z_i > 0 for every i in C (a diagnostic: from a small init often step 1);
  t_stage1        t1's condition and at least 90% of F with l_i > log 2 (z_i < 0): the network
                  fits C and still predicts the true label of the flipped samples. Start of the
                  Stage-I window;
  t_memorize      the first step after t_stage1 with fewer than 90% of F at l_i > log 2: the end
                  of the window, where the flipped samples are being memorized;
  t_clean         mean_{i in C} l_i < Config.clean_loss_level: a loss-level end of Stage I;
  t_overtake      mean_{i in F} max_r rho_bar_{y_obs_i, r, i} > max_{j,r} gamma_{j,r};
  t_cross_flipped || sum_{i in F} u_i xi_i || > || u_0 mu || for the step u = [u_0; u_1..u_N]
                  taken from W(t): the flipped samples' noise outgrows the signal in the step;
  t_half_flipped  z_i > 0 for at least half of F, at or after t1 (at the init about half of F
                  fit by chance): the median memorization time, robust to stragglers;
  t2              z_i > 0 for every training sample (set by the slowest straggler);
  t_best          the lowest true-label test error (evaluated every `eval_every` steps and at
                  every logged step; counted in whole test errors, so no rounding decides it);
  t_cross         || sum_i u_i xi_i || > || u_0 mu ||: all noise against the signal. Already
                  about (1 - 2 tau) sqrt(n SNR^2 / 2) at step 0, so it marks the initialization's
                  geometry, not Stage II; kept because earlier results report it.
A marker that never happens is NEVER (-1); without flipped samples the flipped-sample markers
never happen, so "Stage I exists" (the window is non-empty, t_stage1 != NEVER) is False. Without
clean samples t1 holds vacuously at step 0 and t_stage1 may be set, but a window in which the
clean samples are fitted cannot exist without them: "Stage I exists" is False there too. A run
lacking either kind of sample has vacuous markers (`markers_vacuous`).

At each marker the probes (PROBES) are recorded, and the state is kept as a Snapshot for the
markers in `Config.snapshot_stages`; all of it lives in the scan carry, so it survives vmap and
needs no host callback.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from noisyjax.synthetic.config import TRANSITION_NAMES, Config
from noisyjax.synthetic.decomposition import Geometry
from noisyjax.synthetic.engines import AnyBatch, Engine, get
from noisyjax.synthetic.metrics import (
    LOG2,
    auroc_of_pairs,
    error_rates,
    mann_whitney_pairs,
    masked_mean,
)

NEVER = -1
TRANSITIONS = TRANSITION_NAMES
STAGE_ONE_FRACTION = 0.9  # the Stage-I window: >= 90% of flipped samples at loss > log 2
PROBES = (
    "train_acc_clean",
    "train_acc_noisy",
    "train_loss_clean",
    "train_loss_noisy",
    "frac_noisy_above_log2",
    "frac_clean_below_log2",
    "loss_auroc",
    "gamma_max",
    "rho_bar_clean",
    "rho_bar_noisy",
    "test_err",
    "test_err_noisy_labels",
)
TEST_ERRORS = ("test_err", "test_err_noisy_labels")
SCALAR_PROBES = tuple(p for p in PROBES if p != "loss_auroc")  # the AUROC comes from `losses`


class Snapshot(NamedTuple):
    """What defines a run at one step: its trainable parameters and the decomposition.

    `w` is what the engine trains (`Engine.weights`): the filters W (J, M, D) on the dense engine
    and the coefficients C (J, M, N + 1) of W = W(0) + C [mu; xi_1..xi_N] on the gram and wishart
    engines (`noisyjax.synthetic.engines`); `b` is the bias (zero without one). The same arrays on
    every
    engine; inside the loop of an engine that reads gamma and rho off C they are zeros, and
    `noisyjax.synthetic.train.fit` fills them in from C.
    """

    w: jax.Array  # (J, M, D) or (J, M, K)
    b: jax.Array  # (J, M)
    gamma: jax.Array  # (J, M)
    rho_bar: jax.Array  # (J, M, N)
    rho_under: jax.Array  # (J, M, N)
    step: jax.Array  # () int32


class StepParts(NamedTuple):
    """Norms of the parts of the step taken from a state (None on the final state)."""

    signal: jax.Array  # || u_0 mu ||
    noise: jax.Array  # || sum_i u_i xi_i ||
    noise_flipped: jax.Array  # || sum_{i flipped} u_i xi_i ||


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Stages:
    """Marker times, the probe values at each, the latest test errors and the snapshots.

    Stacked along the marker axis T (TRANSITIONS order) and the snapshot axis S (`kept_names`),
    so that a step updates every marker with a handful of selects instead of one per marker and
    value: the loop's cost per step is a count of small operations (docs/performance.md).
    `time_of` and `snapshots` give the per-name view.
    """

    times: jax.Array  # (T,) int32, NEVER until the marker happens
    probes: jax.Array  # (T, P): SCALAR_PROBES at each marker's time
    losses: jax.Array  # (T, N): per-sample training losses at each marker's time (its AUROC)
    wrong: dict[str, jax.Array]  # latest evaluated test errors as counts, TEST_ERRORS -> int32
    best_wrong: jax.Array  # () int32: the fewest true-label test errors so far
    kept: Snapshot | None  # (S, ...): the states at the markers in `kept_names`
    kept_names: tuple[str, ...] = dataclasses.field(metadata={"static": True}, default=())

    def time_of(self, name: str) -> jax.Array:
        return self.times[TRANSITIONS.index(name)]

    @property
    def snapshots(self) -> dict[str, Snapshot]:
        """The kept snapshots by marker name (in TRANSITIONS order); on stages returned by a
        vmapped or mapped run the leading run axes are kept (`kept.step` is (..., S))."""
        if self.kept is None:
            return {}
        runs = (slice(None),) * (self.kept.step.ndim - 1)
        return {
            name: jax.tree.map(lambda a, i=i: a[runs + (i,)], self.kept)
            for i, name in enumerate(self.kept_names)
        }

    def replace(self, **changes) -> Stages:
        return dataclasses.replace(self, **changes)


def snapshot_of(state, engine: Engine) -> Snapshot:
    """The snapshot of a training state on `engine` (whose `weights` entry of the params it
    keeps: W on dense, C on gram and wishart)."""
    params = state.params
    w = params[engine.weights]
    b = params["b"] if "b" in params else jnp.zeros(w.shape[:2], w.dtype)
    return Snapshot(w, b, state.gamma, state.rho_bar, state.rho_under, state.step)


def kept_names(cfg: Config) -> tuple[str, ...]:
    """The markers whose states are kept as snapshots ("final" is taken after the loop)."""
    return tuple(t for t in TRANSITIONS if t in cfg.snapshot_stages)


def init_stages(state, cfg: Config, train: AnyBatch, test: AnyBatch) -> Stages:
    dtype = train.y.dtype
    n_markers = len(TRANSITIONS)
    unknown = jnp.asarray(test.y.shape[0] + 1, jnp.int32)  # more errors than test samples
    names = kept_names(cfg)
    start = snapshot_of(state, get(cfg.step_engine))._replace(step=jnp.asarray(NEVER, jnp.int32))
    kept = jax.tree.map(lambda a: jnp.broadcast_to(a, (len(names),) + a.shape), start)
    return Stages(
        times=jnp.full(n_markers, NEVER, jnp.int32),
        probes=jnp.full((n_markers, len(SCALAR_PROBES)), jnp.nan, dtype),
        losses=jnp.full((n_markers,) + train.y.shape, jnp.nan, dtype),
        wrong={name: unknown for name in TEST_ERRORS},
        best_wrong=unknown,
        kept=kept if names else None,
        kept_names=names,
    )


def probe(
    gamma_JM: jax.Array,
    rho_bar_JMN: jax.Array,
    z_N: jax.Array,
    train: AnyBatch,
    test_err: dict[str, jax.Array],
) -> dict[str, jax.Array]:
    """The per-step quantities recorded at a marker (the AUROC is taken later, from `losses`)."""
    loss_N = jax.nn.softplus(-z_N)
    correct_N = (z_N > 0).astype(z_N.dtype)
    clean_N = train.mask & ~train.flipped
    noisy_N = train.mask & train.flipped
    rho_bar_JN = jnp.max(rho_bar_JMN, axis=1)
    own_N = jnp.where(train.y_obs > 0, rho_bar_JN[0], rho_bar_JN[1])  # group 0 holds j = +1
    dtype = z_N.dtype
    return {
        "train_acc_clean": masked_mean(correct_N, clean_N),
        "train_acc_noisy": masked_mean(correct_N, noisy_N),
        "train_loss_clean": masked_mean(loss_N, clean_N),
        "train_loss_noisy": masked_mean(loss_N, noisy_N),
        "frac_noisy_above_log2": masked_mean((loss_N > LOG2).astype(dtype), noisy_N),
        "frac_clean_below_log2": masked_mean((loss_N < LOG2).astype(dtype), clean_N),
        "losses": loss_N,
        "gamma_max": jnp.max(gamma_JM),
        "rho_bar_clean": masked_mean(own_N, clean_N),
        "rho_bar_noisy": masked_mean(own_N, noisy_N),
        **test_err,
    }


def fit_hits(
    times: dict[str, jax.Array],
    fitted_N: jax.Array,
    flipped_N: jax.Array,
    above: jax.Array,
    acc_noisy: jax.Array,
) -> dict[str, jax.Array]:
    """The markers read off which samples are fitted (also `noisyjax.real.stages`): t1,
    t_stage1, t_memorize, t_half_flipped, t2. `above` is the fraction of flipped samples at
    loss > log 2 and `acc_noisy` the fraction fitted; NaN (no flipped sample) compares False,
    so those markers then never happen."""
    clean_fitted = jnp.all(fitted_N | flipped_N)
    fitted_once = (times["t1"] != NEVER) | clean_fitted  # at or after t1
    return {
        "t1": clean_fitted,
        "t_stage1": clean_fitted & (above >= STAGE_ONE_FRACTION),
        "t_memorize": (times["t_stage1"] != NEVER) & (above < STAGE_ONE_FRACTION),
        "t_half_flipped": fitted_once & (acc_noisy >= 0.5),
        "t2": jnp.all(fitted_N),
    }


def hits(
    stages: Stages,
    values: dict[str, jax.Array],
    z_N: jax.Array,
    parts: StepParts | None,
    train: AnyBatch,
    cfg: Config,
) -> dict[str, jax.Array]:
    """Whether each marker's condition holds on this state (module docstring); t_best is
    decided by `observe` from the test-error counts."""
    fitted_N = (z_N > 0) | ~train.mask
    above, acc_noisy = values["frac_noisy_above_log2"], values["train_acc_noisy"]
    no = jnp.bool_(False)
    times = {name: stages.time_of(name) for name in ("t1", "t_stage1")}
    # NaN (no clean or no flipped sample) compares False: those markers then never happen.
    return {
        **fit_hits(times, fitted_N, train.flipped, above, acc_noisy),
        "t_clean": values["train_loss_clean"] < cfg.clean_loss_level,
        "t_overtake": values["rho_bar_noisy"] > values["gamma_max"],
        "t_cross_flipped": parts.noise_flipped > parts.signal if parts is not None else no,
        "t_cross": parts.noise > parts.signal if parts is not None else no,
    }


# t_best moves whenever the test error improves; every other marker is set once.
RESETTABLE_T = np.asarray([name == "t_best" for name in TRANSITIONS])


def observe(
    stages: Stages,
    state,
    z_N: jax.Array,
    wrong: dict[str, jax.Array],
    parts: StepParts | None,
    train: AnyBatch,
    test: AnyBatch,
    geom: Geometry,
    cfg: Config,
) -> Stages:
    """Update the markers with the state W(t) (margins z_N = y_obs f, step = state.step).

    `wrong` is the latest evaluated count of test errors (it may be up to eval_every - 1 steps
    old, and so are the test-error probes); `parts` is None on the final state, from which no
    step is taken.
    """
    engine = get(cfg.step_engine)
    test_err = error_rates(wrong, test)
    gamma_JM, rho_bar_JMN, _ = state.decomposition(engine, geom, train)
    values = probe(gamma_JM, rho_bar_JMN, z_N, train, test_err)
    hit = hits(stages, values, z_N, parts, train, cfg)
    hit["t_best"] = wrong["test_err"] < stages.best_wrong
    hit_T = jnp.stack([hit[name] for name in TRANSITIONS])
    new_T = hit_T & ((stages.times == NEVER) | RESETTABLE_T)
    probes_P = jnp.stack([values[p] for p in SCALAR_PROBES])
    kept = stages.kept
    if kept is not None:
        new_S = new_T[np.asarray([TRANSITIONS.index(n) for n in stages.kept_names])]

        def pick(now, before):
            return jnp.where(new_S.reshape(new_S.shape + (1,) * (now.ndim)), now[None], before)

        kept = jax.tree.map(pick, snapshot_of(state, engine), kept)
    return stages.replace(
        times=jnp.where(new_T, state.step, stages.times),
        probes=jnp.where(new_T[:, None], probes_P[None, :], stages.probes),
        losses=jnp.where(new_T[:, None], values["losses"][None, :], stages.losses),
        wrong=wrong,
        best_wrong=jnp.where(hit["t_best"], wrong["test_err"], stages.best_wrong),
        kept=kept,
    )


def summary(stages: Stages, train: AnyBatch, test: AnyBatch, cfg: Config) -> dict[str, jax.Array]:
    """Per-run scalars for the results: marker times, probes at each, the Stage-I window."""
    out: dict[str, jax.Array] = {name: stages.time_of(name) for name in TRANSITIONS}
    clean_N, noisy_N = train.mask & ~train.flipped, train.mask & train.flipped
    # The exact integers of every marker's AUROC in one batch (one sort, not one per marker),
    # then one division per marker: vmapped, XLA's vectorized division is not correctly rounded.
    twice_u_T, pairs_T = jax.vmap(mann_whitney_pairs, (0, None, None))(
        stages.losses, noisy_N, clean_N
    )
    for i, name in enumerate(TRANSITIONS):
        probes = dict(zip(SCALAR_PROBES, stages.probes[i], strict=True))
        value = auroc_of_pairs(twice_u_T[i], pairs_T[i], stages.losses.dtype)
        probes["loss_auroc"] = jnp.where(stages.times[i] == NEVER, jnp.nan, value)
        for key in PROBES:
            out[f"{name}_{key}"] = probes[key]
    start, end = stages.time_of("t_stage1"), stages.time_of("t_memorize")
    has_clean, has_flipped = jnp.any(clean_N), jnp.any(noisy_N)
    exists = (start != NEVER) & has_clean
    out["stage_one_exists"] = exists
    # Steps in the window [t_stage1, t_memorize); a window still open at the end of training
    # is counted up to the final state (t_memorize = NEVER says it was censored).
    closes = jnp.where(end == NEVER, cfg.steps + 1, end)
    out["stage_one_length"] = jnp.where(exists, closes - start, 0).astype(jnp.int32)
    out["markers_vacuous"] = ~(has_clean & has_flipped)
    out["best_test_err"] = error_rates({"test_err": stages.best_wrong}, test)["test_err"]
    return out
