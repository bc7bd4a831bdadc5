"""Adaptive refinement (noisyjax.sweep.refine): the rule on known functions, its convergence
through the one sweep engine on a stand-in experiment whose output is known in closed form,
resume, and the one-line refusals of bad input."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import noisyjax as nj
from noisyjax.errors import check_int
from noisyjax.sweep import Axis, Sweep, experiment, plan, refine
from noisyjax.sweep.spec import Refine, Zip, parse_refine

# -- a stand-in experiment: y = shape(x - c) + noise * (the seed's normal draw) -----------------


@dataclasses.dataclass(frozen=True)
class StandInConfig:
    shape: str = "tanh"  # "tanh": one crossing of 0 at c; "cos": cos(x - c), several
    k: int = 1  # a shape axis, to refine over integers
    EXPERIMENT: ClassVar[str] = "refine-standin"

    def __post_init__(self) -> None:
        check_int("k", self.k)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class StandInHParams:
    x: Any = 0.0
    c: Any = 0.0
    noise: Any = 0.0


def make_run(cfg: StandInConfig):
    f = jnp.tanh if cfg.shape == "tanh" else jnp.cos

    def run(inputs, shared):
        seed, hp, k = inputs
        draw = jax.random.normal(jax.random.key(seed), dtype=jnp.float32)  # common to all x
        y = f(hp.x - hp.c) + hp.noise * draw
        return {"step": jnp.zeros(1, jnp.int32), "y": y, "yk": jnp.tanh(k - hp.c)}, {}

    return run


def run_inputs(table, runs, cfg):
    hp = StandInHParams(**{f: table.hp[f][runs].astype(np.float32) for f in ("x", "c", "noise")})
    return table.seed[runs], hp, table.shape["k"][runs].astype(np.float32)


def buckets(cfg, table):
    return [(dataclasses.replace(cfg, k=int(table.shape["k"].max())), np.arange(table.n_runs))]


EXPERIMENT = experiment.Experiment(
    name="refine-standin",
    config_type=StandInConfig,
    hparams_type=StandInHParams,
    make_run=make_run,
    samples=lambda cfg: 1,
    bytes_per_run=lambda cfg: 64,
    output_bytes=lambda cfg: 16,
    snapshot_bytes=lambda cfg: 0,
    stages=(),
    time="step",
    run_inputs=run_inputs,
    shape_axes=("k",),
    buckets=buckets,
)
experiment.register("refine-standin", __name__)


def standin(values, *, c=0.3, rounds=4, others=(), seeds=1, shape="tanh", **rule) -> Sweep:
    return Sweep(
        "standin",
        StandInConfig(shape=shape),
        StandInHParams(c=c),
        (*others, Axis("x", tuple(values))),
        seeds=seeds,
        refine=Refine(rule.pop("var", "y"), rule.pop("threshold", 0.0), "x", rounds, **rule),
    )


def refined(sweep: Sweep, out) -> Any:
    """Run a refinement; its figure must have been drawn (a failing figure only warns)."""
    ds = refine.run_refined(plan(sweep), out, progress=False, log=lambda line: None)
    recorded = json.loads((out / "config.json").read_text())["refinement"]
    assert recorded["figures"] == ["boundary.png"] and "figures_skipped" not in recorded
    return ds


# -- the rule on one cell -----------------------------------------------------------------------


def test_the_crossing_is_the_last_bracket_interpolated_linearly_or_in_log():
    x = np.array([1.0, 2.0, 4.0, 8.0])
    assert refine.crossing(x, np.array([0.0, 0.25, 0.75, 1.0]), 0.5, True) == pytest.approx(
        math.sqrt(8.0)
    )
    assert refine.crossing(x, np.array([0.0, 0.25, 0.75, 1.0]), 0.5, False) == pytest.approx(3.0)
    assert math.isnan(refine.crossing(x, np.array([0.6, 0.7, 1.0, 1.0]), 0.5, False))  # above
    assert math.isnan(refine.crossing(x, np.array([0.0, 0.1, 0.2, 0.4]), 0.5, False))  # below
    # A dip after the first crossing: the boundary is where the mean stays above the level.
    dip = np.array([0.0, 1.0, 0.0, 1.0])
    assert refine.crossing(x, dip, 0.5, True) == pytest.approx(math.sqrt(32.0))
    assert refine.crossings(dip, 0.5) == 3
    # A decreasing mean crosses too; a missing mean (NaN) is left out.
    assert refine.crossing(x, np.array([1.0, np.nan, 0.0, 0.0]), 0.5, False) == pytest.approx(2.5)


def test_midpoints_follow_the_spacing_and_stop_at_integer_resolution():
    assert refine.midpoint(1.0, 4.0, log=True, integer=False) == 2.0
    assert refine.midpoint(1.0, 4.0, log=False, integer=False) == 2.5
    assert refine.midpoint(3, 6, log=False, integer=True) in (4, 5)
    assert refine.midpoint(3, 4, log=False, integer=True) is None
    auto = Refine("y", 0.0, "x")
    assert refine.spacing_of(auto, (1.0, 2.0, 4.0, 8.0)) == "log"
    assert refine.spacing_of(auto, (1.0, 2.0, 3.0)) == "lin"
    assert refine.spacing_of(dataclasses.replace(auto, spacing="lin"), (1.0, 2.0, 4.0)) == "lin"


def test_the_bootstrap_interval_holds_the_crossing_and_resamples_all_points_alike():
    x = np.array([1.0, 2.0, 4.0, 8.0])
    exists = np.zeros((4, 8))
    exists[2:] = 1.0
    exists[1, :3] = 1.0  # 3 of 8 seeds at x = 2
    low, high, found = refine.bootstrap(x, exists, 0.5, True, 500)
    point = refine.crossing(x, exists.mean(axis=1), 0.5, True)
    assert 2.0 < point < 4.0 and 1.0 < low < point < high <= 4.0 and found == 1.0
    # Seeds that agree everywhere leave no spread.
    same = np.repeat(np.array([[0.0], [0.0], [1.0], [1.0]]), 8, axis=1)
    low, high, _ = refine.bootstrap(x, same, 0.5, False, 200)
    assert low == high == refine.crossing(x, same.mean(axis=1), 0.5, False)


# -- through the engine -------------------------------------------------------------------------


@pytest.mark.parametrize("c", [0.3, -1.37])
def test_the_crossing_converges_at_half_the_bracket_per_round(tmp_path, c):
    """tanh(x - c) crosses 0 at c. The coarse grid (step 1) brackets it; every round halves the
    bracket, which always holds c; the interpolated crossing is within the bracket of c (it
    would fail on a bracket that missed c, a round that did not halve it, or a probe outside
    it)."""
    grid = np.arange(-3.0, 4.0)  # step 1
    errors = []
    for rounds in (0, 1, 3, 5):
        ds = refined(standin(grid, c=c, rounds=rounds), tmp_path / f"r{rounds}")
        low, high = float(ds["bracket_low"]), float(ds["bracket_high"])
        assert high - low == pytest.approx(2.0**-rounds)
        assert low < c < high
        errors.append(abs(float(ds["crossing"]) - c))
        assert errors[-1] <= high - low
        assert bool(ds["located"]) and bool(ds["monotone"]) and int(ds["crossings"]) == 1
        assert ds.attrs["runs"] == len(grid) + rounds
    # Linear interpolation of a smooth function: the error falls faster than the bracket.
    assert errors[-1] < errors[0] * 2.0**-5


def test_refinement_stops_once_the_bracket_is_within_tol(tmp_path):
    """tol 0.3 on a grid of step 1: brackets 1, 0.5, 0.25, then no more rounds of the 10."""
    ds = refined(standin(np.arange(-3.0, 4.0), rounds=10, tol=0.3), tmp_path)
    assert float(ds["bracket_high"]) - float(ds["bracket_low"]) == pytest.approx(0.25)
    assert ds.attrs["runs"] == 7 + 2


def test_several_crossings_and_no_crossing_are_flagged(tmp_path):
    """cos(x - c) on [0, 9] crosses 0 three times: flagged (`crossings` 3), the last one
    refined; a threshold it never reaches gives no crossing, nothing refined."""
    grid = np.arange(0.0, 10.0)
    ds = refined(standin(grid, c=0.0, shape="cos", rounds=3), tmp_path / "cos")
    assert int(ds["crossings"]) == 3 and bool(ds["located"])
    assert float(ds["bracket_low"]) < 2.5 * math.pi < float(ds["bracket_high"])
    # In its coarse bracket [7, 8], cos is monotone: the flag says where the evidence is.
    assert bool(ds["monotone"])
    none = refined(standin(grid, c=0.0, shape="cos", threshold=2.0), tmp_path / "none")
    assert not bool(none["located"]) and math.isnan(float(none["crossing"]))
    assert none.attrs["runs"] == len(grid)  # no round ran


def test_a_non_monotone_bracket_is_flagged(tmp_path):
    """Three coarse points with the crossing between the last two; a probe inside that bracket
    lands on the far side of a bump: the means are not monotone in the coarse bracket."""
    sweep = standin((0.0, 2.0, 4.0), c=0.0, shape="cos", rounds=1, threshold=-0.5)
    # cos(0) = 1, cos(2) = -0.42, cos(4) = -0.65: the last bracket is [2, 4]; cos(3) = -0.99
    ds = refined(sweep, tmp_path)
    assert not bool(ds["monotone"]) and int(ds["crossings"]) == 1


def test_every_cell_of_the_other_axes_is_refined_in_one_batch_per_round(tmp_path):
    """Two other axes (noise and c): each of the four cells gets its own crossing; each round
    is one sweep of the open cells (a zip), whose results are the usual results.nc."""
    others = (Axis("c", (0.25, -0.75)), Axis("noise", (0.0, 0.05)))
    sweep = standin(np.arange(-2.0, 3.0), others=others, rounds=3, seeds=4)
    ds = refined(sweep, tmp_path)
    assert ds["crossing"].dims == ("c", "noise")
    assert ds["point_y"].dims == ("c", "noise", "point", "seed")
    exact = ds.sel(noise=0.0)
    np.testing.assert_allclose(exact["crossing"], exact["c"], atol=2.0**-3)
    for r in (1, 2, 3):
        part = refine.load_round(tmp_path, r)
        assert part.sizes["point"] == 4 and part.sizes["seed"] == 4
        assert set(part["x"].dims) == {"point"} and "c" in part.coords
    config = json.loads((tmp_path / "config.json").read_text())["refinement"]
    assert config["runs_per_round"] == [80, 16, 16, 16] and config["cells_located"] == 4
    assert (tmp_path / "boundary.png").stat().st_size > 0


def test_a_shape_axis_is_bisected_over_integers(tmp_path):
    """tanh(k - 5.5) crosses 0 between k = 5 and 6: the bracket [3, 9] is narrowed by integer
    probes (6, then 4, then 5) to width 1, where it stops whatever the rounds left."""
    sweep = Sweep(
        "standin",
        StandInConfig(),
        StandInHParams(c=5.5),
        (Axis("k", (1, 3, 9, 17)),),
        refine=Refine("yk", 0.0, "k", rounds=10),
    )
    ds = refined(sweep, tmp_path)
    assert (float(ds["bracket_low"]), float(ds["bracket_high"])) == (5.0, 6.0)
    assert ds.attrs["runs"] == 4 + 3


def test_resume_finishes_round_by_round_with_the_same_boundary(tmp_path):
    """A refinement cut off in its second round (its chunks stored, its results.nc not yet
    written; no third round, no boundary.nc): resume trains what is missing and writes the same
    boundary.nc, every variable bit-identical."""
    import shutil

    sweep = standin(np.arange(-3.0, 4.0), rounds=3, seeds=3, others=(Axis("noise", (0.1,)),))
    whole = refined(sweep, tmp_path / "whole")
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "whole", cut)
    shutil.rmtree(cut / "rounds" / "3")
    (cut / "rounds" / "2" / "results.nc").unlink()
    (cut / "boundary.nc").unlink()
    lines = []
    finished = refine.run_refined(plan(sweep), cut, resume=True, progress=False, log=lines.append)
    assert len(lines) == 3  # rounds 1 and 2 read back, round 3 trained
    for name in whole.data_vars:
        np.testing.assert_array_equal(finished[name].values, whole[name].values, err_msg=name)


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Refine("y", 0.0, "x", rounds=-1), "refine rounds=-1 is invalid"),
        (lambda: Refine("y", float("nan"), "x"), "refine threshold=nan is invalid"),
        (lambda: Refine("y", 0.0, "x", spacing="cubic"), "refine spacing='cubic' is invalid"),
        (lambda: Refine("", 0.0, "x"), "refine var='' is invalid"),
        (lambda: parse_refine("y:0.5"), "--refine='y:0.5' is invalid: allowed VAR:THRESHOLD"),
        (lambda: parse_refine("y:half:x"), "--refine='y:half:x' is invalid"),
        (lambda: standin((0.0, 1.0)).with_axis(Axis("c", (0.0,))), None),
        (
            lambda: dataclasses.replace(standin((0.0, 1.0)), refine=Refine("y", 0.0, "c")),
            "--refine AXIS='c' is invalid: allowed one of the sweep's axes with two values",
        ),
        (
            lambda: standin((1.0,)),
            "--refine AXIS='x' is invalid: allowed one of the sweep's axes with two values",
        ),
        (lambda: standin((-1.0, 1.0), spacing="log"), "--refine spacing='log' is invalid"),
        (lambda: Zip("point", {"x": (1.0, 1.0)}), "zip point='repeated points' is invalid"),
    ],
)
def test_bad_rules_are_refused_in_one_line(make, message):
    if message is None:
        make()  # a sweep with a one-value axis beside the refined one is fine
        return
    with pytest.raises(nj.ConfigError) as err:
        make()
    assert str(err.value).startswith(message), err.value
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--refine", "nope:0.5:n_snr2"], "--refine VAR='nope' is invalid: allowed a per-run"),
        (["--refine", "sample_loss:0.5:n_snr2"], "--refine VAR='sample_loss' is invalid"),
        (["--refine", "stage_one_exists:1.5:n_snr2"], "--refine THRESHOLD=1.5 is invalid"),
        (["--refine", "test_err:0:n_snr2"], "--refine THRESHOLD=0.0 is invalid"),
        (["--refine", "t1:-3:n_snr2"], "--refine THRESHOLD=-3.0 is invalid: allowed a number > 0"),
        (["--refine", "test_err:0.2:eta"], "--refine AXIS='eta' is invalid"),
        (["--refine-rounds", "3"], "--refine-rounds=3 is invalid: allowed with --refine"),
        (["--refine", "test_err:0.2:tau", "--refine-tol", "-1"], "refine tol=-1.0 is invalid"),
        (["--refine", "test_err:0.2:tau", "--refine-rounds", "99"], "refine rounds=99"),
        (["--refine", "test_err:0.2:tau", "--distributed"], "--refine runs in one process"),
    ],
)
def test_the_command_line_refuses_bad_rules_in_one_line(args, message, tmp_path, capsys):
    from sweeps import grid

    out = tmp_path / "never"
    argv = ["--preset", "tiny", "--no-progress", "--out", str(out), *args]
    assert grid.main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("sweeps.grid: error: " + message), line
    assert not out.exists()


def test_the_command_line_refines_and_resumes_from_config_json_alone(tmp_path, capsys):
    """--refine on the tiny preset, then `--resume --out DIR` alone on the finished directory:
    the recorded rule is resumed, nothing is retrained, the boundary is the same; --replot
    redraws boundary.png. (In-process: the subprocess CLI is tested by test_cli.)"""
    from sweeps import grid

    out = tmp_path / "sweep"
    args = ["--preset", "tiny", "--no-progress", "--seeds", "4", "--out", str(out)]
    rule = ["--refine", "train_acc_noisy:0.5:n_snr2", "--refine-rounds", "2"]
    assert grid.main([*args, *rule]) == 0
    assert "refine: where the seed mean of train_acc_noisy crosses 0.5" in capsys.readouterr().err
    before = refine.load_refinement(out)
    assert grid.main(["--out", str(out), "--resume", "--no-progress"]) == 0
    after = refine.load_refinement(out)
    for name in before.data_vars:
        np.testing.assert_array_equal(after[name].values, before[name].values, err_msg=name)
    assert {"boundary.png", "results.nc", "boundary.nc"} <= {p.name for p in out.iterdir()}
    (out / "boundary.png").unlink()
    capsys.readouterr()
    assert grid.main(["--replot", str(out)]) == 0
    assert str(out / "boundary.png") in capsys.readouterr().out.splitlines()
    assert (out / "boundary.png").stat().st_size > 0
