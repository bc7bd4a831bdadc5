"""The sweep engine runs any experiment: the worked example of docs/architecture.md end to end,
and the old module paths still import."""

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

import noisyjax as nj

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def linear():
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        yield importlib.import_module("linear_experiment")
    finally:
        sys.path.remove(str(ROOT / "examples"))


def test_a_new_experiment_family_runs_resumes_and_reads_back(linear, tmp_path):
    axes = (nj.Axis("tau", (0.0, 0.3)), nj.Axis("eta", (0.5, 1.0)))
    sweep = nj.Sweep(
        "lin", linear.LinearConfig(n=50, d=80, steps=30), linear.LinearHParams(), axes, 2
    )
    assert sweep.experiment is linear.EXPERIMENT
    ds = nj.run_sweep(nj.plan(sweep, chunk_runs=2, vector_runs=2), tmp_path / "a", progress=False)
    assert ds["train_acc_clean"].dims == ("tau", "eta", "seed", "step")
    assert np.isnan(ds["train_acc_noisy"].sel(tau=0.0)).all()  # no flipped sample at tau = 0
    rate = ds["flip_rate_realized"].sel(tau=0.3).values
    assert ((0.1 < rate) & (rate < 0.5)).all()
    # An interrupted copy (one chunk lost, no results) resumes to the same numbers.
    import shutil

    shutil.copytree(tmp_path / "a", tmp_path / "b")
    (tmp_path / "b" / "results.nc").unlink()
    shutil.rmtree(tmp_path / "b" / "stages" / "2")
    again = nj.run_sweep(
        nj.plan(sweep, chunk_runs=2, vector_runs=2), tmp_path / "b", resume=True, progress=False
    )
    for name in ds.data_vars:
        np.testing.assert_array_equal(again[name].values, ds[name].values, err_msg=name)
    # Bad values are refused by the experiment's own constructors, naming the axis.
    with pytest.raises(nj.ConfigError, match=r"^tau=0\.5 is invalid"):
        nj.plan(sweep.with_axis(nj.Axis("tau", (0.1, 0.5))))
    with pytest.raises(nj.ConfigError, match="axis"):
        nj.Sweep("lin", linear.LinearConfig(), linear.LinearHParams(), (nj.Axis("n", (3,)),))


def test_old_module_paths_import_from_their_new_homes():
    from noisyjax.grid import Axis, parse_axis  # noqa: F401
    from noisyjax.real.sweep import RealSweep, plan_real
    from noisyjax.results import load_sweep
    from noisyjax.runner import run_sweep

    assert (RealSweep, plan_real, load_sweep, run_sweep) == (
        nj.Sweep,
        nj.plan,
        nj.load_sweep,
        nj.run_sweep,
    )
    import noisyjax.results

    assert "noisyjax.sweep.store" in noisyjax.results.__doc__
    with pytest.raises(AttributeError, match="moved: look in noisyjax.sweep.store"):
        noisyjax.results.no_such_name  # noqa: B018
