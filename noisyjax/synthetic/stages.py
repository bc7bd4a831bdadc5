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

from typing import NamedTuple

import jax
import jax.numpy as jnp

from noisyjax.synthetic.config import TRANSITION_NAMES, Config
from noisyjax.synthetic.decomposition import Geometry
from noisyjax.synthetic.engines import AnyBatch, Engine, get
from noisyjax.synthetic.metrics import LOG2, auroc, error_rates, masked_mean

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


class Stages(NamedTuple):
    """Marker times, the probe values at each, the latest test errors and the snapshots."""

    times: dict[str, jax.Array]  # name -> () int32, NEVER until it happens
    probes: dict[str, dict[str, jax.Array]]  # name -> probe values at that time
    wrong: dict[str, jax.Array]  # latest evaluated test errors as counts, TEST_ERRORS -> int32
    best_wrong: jax.Array  # () int32: the fewest true-label test errors so far
    snapshots: dict[str, Snapshot]  # for the markers in cfg.snapshot_stages


def snapshot_of(state, engine: Engine) -> Snapshot:
    """The snapshot of a training state on `engine` (whose `weights` entry of the params it
    keeps: W on dense, C on gram and wishart)."""
    params = state.params
    w = params[engine.weights]
    b = params["b"] if "b" in params else jnp.zeros(w.shape[:2], w.dtype)
    return Snapshot(w, b, state.gamma, state.rho_bar, state.rho_under, state.step)


def init_stages(state, cfg: Config, train: AnyBatch, test: AnyBatch) -> Stages:
    dtype = train.y.dtype
    never = jnp.asarray(NEVER, jnp.int32)
    nan = jnp.asarray(jnp.nan, dtype)
    losses_N = jnp.full(train.y.shape, jnp.nan, dtype)
    unknown = jnp.asarray(test.y.shape[0] + 1, jnp.int32)  # more errors than test samples
    return Stages(
        times={t: never for t in TRANSITIONS},
        probes={
            t: {**{p: nan for p in PROBES if p != "loss_auroc"}, "losses": losses_N}
            for t in TRANSITIONS
        },
        wrong={name: unknown for name in TEST_ERRORS},
        best_wrong=unknown,
        snapshots={
            t: snapshot_of(state, get(cfg.step_engine))._replace(step=never)
            for t in TRANSITIONS
            if t in cfg.snapshot_stages
        },
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
    """Whether each marker's condition holds on this state (module docstring)."""
    fitted_N = (z_N > 0) | ~train.mask
    above, acc_noisy = values["frac_noisy_above_log2"], values["train_acc_noisy"]
    no = jnp.bool_(False)
    # NaN (no clean or no flipped sample) compares False: those markers then never happen.
    return {
        **fit_hits(stages.times, fitted_N, train.flipped, above, acc_noisy),
        "t_clean": values["train_loss_clean"] < cfg.clean_loss_level,
        "t_overtake": values["rho_bar_noisy"] > values["gamma_max"],
        "t_cross_flipped": parts.noise_flipped > parts.signal if parts is not None else no,
        "t_cross": parts.noise > parts.signal if parts is not None else no,
    }


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
    t = state.step
    engine = get(cfg.step_engine)
    test_err = error_rates(wrong, test)
    gamma_JM, rho_bar_JMN, _ = state.decomposition(engine, geom, train)
    values = probe(gamma_JM, rho_bar_JMN, z_N, train, test_err)
    new = {
        name: (stages.times[name] == NEVER) & hit
        for name, hit in hits(stages, values, z_N, parts, train, cfg).items()
    }
    new["t_best"] = wrong["test_err"] < stages.best_wrong

    def pick(n, a, b):
        return jax.tree.map(lambda u, v: jnp.where(n, u, v), a, b)

    current = snapshot_of(state, engine)
    return Stages(
        times={name: jnp.where(new[name], t, stages.times[name]) for name in TRANSITIONS},
        probes={name: pick(new[name], values, stages.probes[name]) for name in TRANSITIONS},
        wrong=wrong,
        best_wrong=jnp.where(new["t_best"], wrong["test_err"], stages.best_wrong),
        snapshots={name: pick(new[name], current, s) for name, s in stages.snapshots.items()},
    )


def summary(stages: Stages, train: AnyBatch, test: AnyBatch, cfg: Config) -> dict[str, jax.Array]:
    """Per-run scalars for the results: marker times, probes at each, the Stage-I window."""
    out: dict[str, jax.Array] = {name: stages.times[name] for name in TRANSITIONS}
    clean_N, noisy_N = train.mask & ~train.flipped, train.mask & train.flipped
    for name in TRANSITIONS:
        probes = dict(stages.probes[name])
        value = auroc(probes.pop("losses"), noisy_N, clean_N)
        probes["loss_auroc"] = jnp.where(stages.times[name] == NEVER, jnp.nan, value)
        for key in PROBES:
            out[f"{name}_{key}"] = probes[key]
    start, end = stages.times["t_stage1"], stages.times["t_memorize"]
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
