"""The paper presets: documented, valid grids, and one tiny end-to-end run through the figures."""

import dataclasses
import json

import numpy as np
import pytest

import noisyjax as nj
from noisyjax.sweep import Axis, expand
from noisyjax.synthetic import theory
from sweeps.presets import PRESETS

PAPER = (
    "whole-story",
    "paper-fig1",
    "stage1-phase",
    "t1-scaling",
    "early-stopping",
    "sample-selection",
    "stage1-boundary",
    "detectors",
)


@pytest.mark.parametrize("name", PAPER)
def test_preset_is_documented_and_expands(name):
    sweep, figures = PRESETS[name]()
    doc = PRESETS[name].__doc__
    for part in ("Command: python -m sweeps.grid --preset " + name, "Runtime:", "Figure"):
        assert part in doc
    table = expand(sweep)
    assert table.n_runs == sweep.n_runs and callable(figures)


def test_t1_scaling_holds_n_snr2_fixed_while_eta_n_m_d_vary():
    sweep, _ = PRESETS["t1-scaling"]()
    table = expand(sweep)
    ratio = theory.n_snr2(
        table.shape["n"], table.hp["mu_norm"], table.hp["sigma_p"], table.shape["d"]
    )
    np.testing.assert_allclose(ratio, 8.0)
    for field in ("n", "m", "d"):
        assert len(np.unique(table.shape[field])) == 2
    assert len(np.unique(table.hp["eta"])) == 2


def test_sample_selection_end_to_end_on_a_tiny_grid(tmp_path):
    sweep, figures = PRESETS["sample-selection"]()
    cfg = sweep.cfg.replace(
        n=16, d=40, m=3, steps=30, log_every=2, eval_every=2, n_test=64, engine="dense"
    )
    sweep = dataclasses.replace(sweep, cfg=cfg, seeds=2).with_axis(Axis("n_snr2", (6.0,)))
    nj.run_sweep(nj.plan(sweep), tmp_path, figures=figures, progress=False)
    summary = json.loads((tmp_path / "summary.json").read_text())
    for name in ("selection.png", "retrain.png"):
        assert (tmp_path / name).stat().st_size > 0
    retrain = summary["retrain_final_test_err"]
    # Training on all samples from the run's own init reproduces the sweep's run.
    np.testing.assert_allclose(retrain["all samples"], summary["sweep_final_test_err"])
    assert set(retrain) == {
        "all samples",
        "log-2 selection at window end",
        "small-loss (tau_hat = tau) at window end",
        "true clean set",
    }
    # The selection is taken inside the Stage-I window, before it closes at t_memorize.
    for step, end in zip(summary["selection_step"], summary["t_memorize"], strict=True):
        assert end is None or not np.isfinite(end) or step < end


@pytest.mark.parametrize("name", ["whole-story", "early-stopping", "sample-selection"])
def test_presets_sit_above_the_measured_stage_one_boundary(name):
    """The docstring's ratio n SNR^2 (1 - 2 tau) / 2 is the grid's, and it is at least 2."""
    sweep, _ = PRESETS[name]()
    table = expand(sweep)
    n_snr2 = theory.n_snr2(
        table.shape["n"], table.hp["mu_norm"], table.hp["sigma_p"], table.shape["d"]
    )
    noisy = table.hp["tau_plus"] > 0
    ratio = n_snr2[noisy] * (1 - 2 * table.hp["tau_plus"][noisy]) / 2
    assert np.all(ratio >= 2.0), ratio
    doc = " ".join(PRESETS[name].__doc__.split()).lower()
    assert f"ratio n snr^2 (1 - 2 tau) / 2 = {ratio.min():g}" in doc


def test_whole_story_figures_and_summary_on_a_small_run(tmp_path):
    sweep, figures = PRESETS["whole-story"]()
    cfg = sweep.cfg.replace(n=40, d=60, m=4, steps=60, log_every=2, n_test=100)
    sweep = dataclasses.replace(sweep, cfg=cfg, seeds=2)
    nj.run_sweep(nj.plan(sweep), tmp_path, figures=figures, progress=False)
    assert (tmp_path / "story.png").stat().st_size > 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["markers"]["noisy"]) == set(nj.TRANSITION_NAMES) | {"stage_one_length"}
    assert summary["markers"]["control"]["t_stage1"] == [-1, -1]  # no flipped samples
    assert {"1", "2", "3", "5", "6", "7", "8", "10"} == set(summary["predictions"])
    for check in summary["predictions"].values():
        assert check["verdict"].startswith(("holds", "fails")) and check["could_fail_if"]


def test_detectors_end_to_end_on_a_tiny_grid(tmp_path):
    sweep, figures = PRESETS["detectors"]()
    cfg = sweep.cfg.replace(n=30, d=60, m=4, steps=40, log_every=5, n_test=64, engine="dense")
    sweep = dataclasses.replace(sweep, cfg=cfg, seeds=2)
    sweep = sweep.with_axis(Axis("tau", (0.2, 0.3))).with_axis(Axis("n_snr2", (8.0,)))
    nj.run_sweep(nj.plan(sweep), tmp_path, figures=figures, progress=False)
    for name in ("detectors_time.png", "detectors_map.png"):
        assert (tmp_path / name).stat().st_size > 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    (row, _) = summary["whole_story_cell"]
    assert set(row["detectors"]) == {
        "small-loss (tau_hat 0.2)",
        "log 2",
        "AUM",
        "GMM",
        "confident learning",
    }
    for scores in row["detectors"].values():
        assert set(scores) == {"window middle", "t_memorize", "end"}
        assert 0.0 <= scores["end"]["precision"] <= 1.0
    assert 0 <= row["labelwave"]["step"] <= cfg.steps
    assert set(row["stable_set_stops"]) == set(row["detectors"])
