"""The sweep engine: a run's results depend only on its seed and its own settings."""

import dataclasses

import jax
import numpy as np
import pytest

import noisyjax as nj
from noisyjax.sweep import Axis, Sweep, expand, parse_axis, run_chunks
from noisyjax.synthetic.experiment import EXPERIMENT as SYNTHETIC

CFG = nj.Config(n=16, d=40, m=3, steps=20, log_every=5, n_test=25)
HP = nj.HParams(eta=0.5, mu_norm=3.0, sigma_0=0.05)


def run_all(sweep, **plan_kwargs):
    plan = nj.plan(sweep, **plan_kwargs)
    out = {}
    for runs, metrics, _ in run_chunks(plan, np.arange(plan.table.n_runs)):
        for k, v in metrics.items():
            out.setdefault(k, np.zeros((plan.table.n_runs,) + v.shape[1:], v.dtype))[runs] = v
    return plan, out


def cell(metrics, index):
    return {k: v[index] for k, v in metrics.items()}


def assert_same(a, b, rtol=0.0, atol=0.0):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=atol, err_msg=k)


def test_axis_specs():
    assert parse_axis("tau=0,0.1,0.2").values == (0.0, 0.1, 0.2)
    assert parse_axis("eta=lin:0.1:0.3:3").values == pytest.approx((0.1, 0.2, 0.3))
    assert parse_axis("sigma_p=log:0.1:10:3").values == pytest.approx((0.1, 1.0, 10.0))
    assert parse_axis("d=range:100:130:10").values == (100, 110, 120)


def test_expand_orders_runs_like_the_grid_and_derives_mu():
    sweep = Sweep("t", CFG, HP, (Axis("tau", (0.1, 0.2)), Axis("n_snr2", (1.0, 4.0))), seeds=2)
    table = expand(sweep)
    assert table.n_runs == 8 and list(table.seed) == [0, 1] * 4
    np.testing.assert_allclose(table.hp["tau_plus"], [0.1] * 4 + [0.2] * 4)
    n_snr2 = table.shape["n"] * table.hp["mu_norm"] ** 2 / (table.hp["sigma_p"] ** 2 * CFG.d)
    np.testing.assert_allclose(n_snr2, [1, 1, 4, 4] * 2)


def test_chunk_size_does_not_change_results():
    sweep = Sweep("t", CFG, HP, (Axis("tau", (0.0, 0.2, 0.4)),), seeds=3)
    _, a = run_all(sweep, chunk_runs=2)
    _, b = run_all(sweep, chunk_runs=9)
    assert_same(a, b)


def test_a_cell_alone_equals_the_same_cell_in_a_grid():
    grid = Sweep("t", CFG, HP, (Axis("tau", (0.1, 0.3)), Axis("eta", (0.2, 0.5))), seeds=2)
    _, full = run_all(grid, chunk_runs=3)
    alone = Sweep("t", CFG, HP.replace(tau_plus=0.3, tau_minus=0.3, eta=0.2), (), seeds=2)
    _, single = run_all(alone)
    assert_same(cell(full, np.array([4, 5])), single)  # (tau=0.3, eta=0.2, seeds 0 and 1)


def test_shape_axes_equal_separate_runs():
    """n and d are padded into one program, m is bucketed: each cell equals its own run."""
    cfg = CFG.replace(dtype="float64")
    axes = (Axis("n", (9, 16)), Axis("d", (17, 40)), Axis("m", (2, 3)))
    plan, full = run_all(Sweep("t", cfg, HP, axes, seeds=1))
    assert len(plan.buckets) == 2  # one program per m; n and d padded inside it
    for run in (0, 3, 5, 6):  # (n, d, m) = (9, 17, 2), (9, 40, 3), (16, 17, 3), (16, 40, 2)
        n, d, m = (int(plan.table.shape[k][run]) for k in ("n", "d", "m"))
        alone = Sweep("t", cfg.replace(n=n, d=d, m=m), HP, (), seeds=1)
        _, single = run_all(alone)
        assert_same(cell(full, np.array([run])), single, rtol=1e-10, atol=1e-12)


def test_plan_respects_memory_budget_and_device_multiple():
    sweep = Sweep("t", CFG, HP, (Axis("tau", tuple(np.linspace(0, 0.4, 10))),), seeds=3)
    per_run, outputs = SYNTHETIC.bytes_per_run(CFG), SYNTHETIC.output_bytes(CFG)
    budget = 5 * per_run + 30 * outputs
    plan = nj.plan(sweep, max_memory=budget, min_chunks=1)
    width = budget // (per_run + outputs)  # V runs and their outputs fit
    room = (budget - per_run * width) // outputs  # the chunk's outputs fill what is left
    assert plan.buckets[0].vector_runs == min(8, width) >= 5
    assert plan.buckets[0].chunk_runs == max(1, min(30, room) // width) * width
    assert plan.summary()["buckets"][0]["bytes_per_chunk"] <= budget
    plan = nj.plan(sweep, max_memory=per_run + 6 * outputs)  # room for 6 runs' outputs
    assert plan.buckets[0].vector_runs == 1 and plan.buckets[0].chunk_runs == 6
    # Less than one run needs, or too wide a vector, or too big a chunk: refused with the
    # estimate, before anything runs.
    with pytest.raises(nj.ConfigError, match=r"^max_memory=.* estimated peak"):
        nj.plan(sweep, max_memory=per_run // 2)
    with pytest.raises(nj.ConfigError, match="estimated peak"):
        nj.plan(sweep, max_memory=50 * per_run, vector_runs=100)
    with pytest.raises(nj.ConfigError, match="estimated peak"):
        nj.plan(sweep, max_memory=50 * per_run, chunk_runs=10**12)
    with pytest.raises(nj.ConfigError, match=r"^runs=1000000000 is invalid"):
        nj.plan(dataclasses.replace(sweep, seeds=10**8))
    plan = nj.plan(sweep, devices=jax.devices() * 4, chunk_runs=6, vector_runs=2)
    assert plan.buckets[0].chunk_runs == 8 and plan.n_chunks == 4


class FakeAccelerator:
    """What the planner reads of a device: its platform and its memory statistics."""

    platform = "gpu"

    def __init__(self, bytes_limit: int):
        self.bytes_limit = bytes_limit

    def memory_stats(self) -> dict:
        return {"bytes_limit": self.bytes_limit}


def test_accelerator_width_is_the_widest_power_of_two_the_budget_and_the_runs_allow():
    from noisyjax.sweep.plan import default_width

    # The H200 measurements (docs/performance.md): paper-sized runs fit 397 in the default
    # budget, Kou-sized ones 10,166; the benchmark recommended 256 and 4096.
    assert default_width("gpu", 397, 10**6) == 256
    assert default_width("gpu", 10_166, 10**6) == 4096
    assert default_width("tpu", 10_166, 5) == 8  # a 5-run bucket is not padded to thousands
    assert default_width("gpu", 3, 10**6) == 2 and default_width("gpu", 0, 10) == 1
    assert default_width("cpu", 10_166, 5) == 8 and default_width("cpu", 3, 100) == 3
    sweep = Sweep("t", CFG, HP, (Axis("tau", tuple(np.linspace(0, 0.4, 10))),), seeds=300)
    per_run = SYNTHETIC.bytes_per_run(CFG) + SYNTHETIC.output_bytes(CFG)
    device = FakeAccelerator(bytes_limit=2 * 1000 * per_run)  # the budget holds 1000 runs
    bucket = nj.plan(sweep, devices=[device]).buckets[0]
    assert bucket.vector_runs == 512 and bucket.chunk_runs % 512 == 0


def test_bad_grid_values_are_rejected_before_running():
    with pytest.raises(nj.ConfigError, match=r"^tau=0\.5 is invalid: allowed"):
        nj.plan(Sweep("t", CFG, HP, (Axis("tau", (0.1, 0.5)),)))
    with pytest.raises(nj.ConfigError, match="axis n_snr2"):
        Sweep("t", CFG, HP, (Axis("n_snr2", (1.0,)), Axis("mu_norm", (1.0,))))
    with pytest.raises(nj.ConfigError, match="seeds=0"):
        Sweep("t", CFG, HP, (), seeds=0)


def test_a_diverging_run_is_flagged_and_leaves_its_chunk_untouched():
    cfg = CFG.replace(activation="relu_q", q=3.0)  # cubic growth: a large step blows up
    hp = HP.replace(sigma_0=0.1, eta=0.001)
    _, calm = run_all(Sweep("t", cfg, hp, (Axis("eta", (0.001, 0.002)),), seeds=2), chunk_runs=8)
    _, mixed = run_all(Sweep("t", cfg, hp, (Axis("eta", (0.001, 1e6)),), seeds=2), chunk_runs=8)
    np.testing.assert_array_equal(mixed["diverged"], [False, False, True, True])
    assert np.all(mixed["diverged_step"][2:] >= 0) and np.all(mixed["diverged_step"][:2] == -1)
    for run in (2, 3):  # metrics from the step of divergence on are masked, earlier ones kept
        after = mixed["step"][run] >= mixed["diverged_step"][run]
        assert after.any() and np.all(np.isnan(mixed["train_loss"][run][after]))
        assert np.all(np.isfinite(mixed["train_loss"][run][~after]))
    assert_same(cell(mixed, np.array([0, 1])), cell(calm, np.array([0, 1])))  # bit for bit


def test_single_jitted_run_equals_the_sweep_engine_on_every_stage_output():
    """log_every > 1 with eval_every = 1: the markers (t_best among them) are found on steps that
    are not logged, so a path that read a logged value instead would disagree here."""
    cfg = nj.Config(n=30, d=200, m=4, steps=120, log_every=10, n_test=200, dtype="float64")
    hp = nj.HParams(eta=0.05, mu_norm=6.0, sigma_0=0.01)
    taus = (0.0, 0.2, 0.35)
    plan, swept = run_all(Sweep("t", cfg, hp, (Axis("tau", taus),), seeds=4), chunk_runs=5)
    train = jax.jit(nj.make_train(cfg))
    stage_outputs = [k for k, v in swept.items() if v.ndim == 1]
    assert {"t_best", "t_stage1", "t_memorize", "stage_one_length"} <= set(stage_outputs)
    off_log = 0
    for run in range(plan.table.n_runs):
        tau = float(plan.table.hp["tau_plus"][run])
        run_hp = hp.replace(tau_plus=np.float64(tau), tau_minus=np.float64(tau))
        _, alone = train(jax.random.key(int(plan.table.seed[run])), run_hp)
        for k in stage_outputs:  # times and flags exactly; probes to float64 rounding (vmap
            # batches the reductions, which may move the last bit)
            a, b = np.asarray(alone[k]), swept[k][run]
            if np.issubdtype(a.dtype, np.floating):
                np.testing.assert_allclose(a, b, rtol=1e-13, atol=0, err_msg=k)
            else:
                np.testing.assert_array_equal(a, b, err_msg=k)
        off_log += int(alone["t_best"]) % cfg.log_every != 0
    assert off_log > 0  # some t_best falls between logged steps: the check could fail


@pytest.mark.parametrize("extra", [{}, {"log_samples": True, "n_val": 8}])
def test_run_sweep_returns_what_load_sweep_reads(tmp_path, extra):
    """Without figures, run_sweep decodes its results in memory instead of reading results.nc
    back: the two must be identical (values, dtypes, attributes), never-reached markers (NaN)
    and flags (booleans) included."""
    import xarray as xr

    cfg = nj.Config(n=12, d=30, m=2, steps=6, log_every=3, n_test=20, **extra)
    sweep = Sweep("t", cfg, nj.HParams(), (Axis("tau", (0.0, 0.3)),), seeds=2)
    returned = nj.run_sweep(nj.plan(sweep), tmp_path / "s", progress=False)
    read = nj.load_sweep(tmp_path / "s")
    xr.testing.assert_identical(returned, read)
    assert all(returned[k].dtype == read[k].dtype for k in read.variables)
    assert returned["t2"].isnull().any() and returned["stage_one_exists"].dtype == bool


def test_run_sweep_returns_what_load_sweep_reads_for_real_images(tmp_path):
    import xarray as xr

    from noisyjax.real import RealConfig, RealHParams

    cfg = RealConfig(width=4, epochs=3, batch_size=32, lr_milestones=(2,), eval_batch=64)
    sweep = Sweep("r", cfg, RealHParams(), (Axis("tau", (0.0, 0.2)),), seeds=1)
    returned = nj.run_sweep(nj.plan(sweep), tmp_path / "s", progress=False)
    xr.testing.assert_identical(returned, nj.load_sweep(tmp_path / "s"))


@pytest.mark.parametrize("engine", ["dense", "wishart"])
def test_swept_error_rates_are_the_correctly_rounded_fractions(engine):
    """Every test and validation error of a float32 sweep is count / n rounded once (364 / 1000
    is 0.364). XLA's CPU backend turns a division by a broadcast scalar into a multiplication by
    its reciprocal: with it, about a sixth of these values were one ulp off."""
    cfg = nj.Config(n=20, d=120, m=3, steps=30, log_every=3, n_test=1000, n_val=70, engine=engine)
    sweep = Sweep("t", cfg, HP, (Axis("tau", (0.0, 0.2)), Axis("n", (14, 20))), seeds=3)
    _, swept = run_all(sweep, vector_runs=4)
    sizes = {"test": cfg.n_test, "val": cfg.n_val}
    checked = 0
    for name, values in swept.items():
        split = next((s for s in sizes if name.split("_err")[0].endswith(s)), None)
        if "_err" not in name or split is None or values.dtype != np.float32:
            continue
        n = sizes[split]
        values = values[np.isfinite(values)]
        counts = np.rint(values.astype(np.float64) * n)
        np.testing.assert_array_equal(
            values, counts.astype(np.float32) / np.float32(n), err_msg=name
        )
        checked += values.size
    assert checked > 500


def test_a_looped_draw_equals_the_vectorized_one_bit_for_bit():
    """On a CPU an R^d draw vmapped over runs loops over them (`train.sample_run`); it must give
    the numbers of the engine's own vectorized draw and of each run drawn alone."""
    from noisyjax.synthetic.engines import get
    from noisyjax.synthetic.train import sample_run

    cfg = nj.Config(n=12, d=90, m=3, n_test=40, n_val=8, signal="random", engine="gram")
    assert get(cfg.step_engine).loop_draw and jax.default_backend() == "cpu"
    keys = jax.vmap(jax.random.key)(np.arange(5))
    hp = jax.tree.map(lambda x: np.full(5, x, np.float32), nj.HParams())
    hp = hp.replace(tau_plus=np.linspace(0.0, 0.4, 5, dtype=np.float32))
    sizes = nj.Sizes(n=np.array([12, 9, 12, 7, 12], np.int32), d=np.full(5, 90, np.int32))

    def vectorized(key, hp, sizes):
        k_data, k_init = jax.random.split(key, 3)[:2]
        return get(cfg.step_engine).sample_run(k_data, k_init, cfg, hp, sizes)

    looped = jax.jit(jax.vmap(lambda k, h, s: sample_run(k, cfg, h, s)))(keys, hp, sizes)
    plain = jax.jit(jax.vmap(vectorized))(keys, hp, sizes)
    alone = jax.jit(lambda k, h, s: sample_run(k, cfg, h, s))
    for a, b in zip(jax.tree.leaves(looped), jax.tree.leaves(plain), strict=True):
        np.testing.assert_array_equal(a, b)
    for run in (1, 3):
        one = alone(
            keys[run], jax.tree.map(lambda x: x[run], hp), jax.tree.map(lambda x: x[run], sizes)
        )
        for a, b in zip(jax.tree.leaves(looped), jax.tree.leaves(one), strict=True):
            np.testing.assert_array_equal(a[run], b)


def test_fraction_is_correctly_rounded_where_plain_division_is_not():
    """`metrics.fraction` against NumPy's (correctly rounded) float32 division, for a constant,
    a traced scalar and a vmapped divisor; plain `count / n` fails the first (XLA multiplies
    by the reciprocal), so the check can fail."""
    from noisyjax.synthetic.metrics import fraction

    counts = np.arange(1001, dtype=np.int32)
    exact = counts.astype(np.float32) / np.float32(1000)
    plain = jax.jit(lambda c: c.astype(np.float32) / 1000)(counts)
    assert np.sum(np.asarray(plain) != exact) > 100
    const = jax.jit(lambda c: fraction(c, 1000, np.float32))(counts)
    traced = jax.jit(lambda c, n: fraction(c, n, np.float32))(counts, np.int32(1000))
    vmapped = jax.jit(jax.vmap(lambda c, n: fraction(c, n, np.float32), (0, None)))(
        counts, np.int32(1000)
    )
    for got in (const, traced, vmapped):
        np.testing.assert_array_equal(np.asarray(got), exact)
