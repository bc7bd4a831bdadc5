"""`python -m benchmarks.device` in quick mode: every field of its JSON, and its recommendation.

The quick run (tiny sizes, XLA optimizations off, 2 widths) runs the paper setting only: each
compiled program costs seconds on a 2-core CPU. The Kou setting is checked as far as its plan,
without compiling.
"""

from __future__ import annotations

import json
import math

import pytest

import noisyjax as nj
from benchmarks import device

MACHINE = {
    "backend",
    "device",
    "device_kind",
    "device_count",
    "jax",
    "noisyjax",
    "cpu_count",
    "loadavg",
    "loadavg_end",
    "python",
    "platform",
    "git_commit",
}
MEMORY = {"temp_bytes", "argument_bytes", "output_bytes", "xla_bytes"}
DEVICE_MEMORY = {"peak_bytes_in_use", "bytes_in_use", "bytes_limit"}
SEQUENTIAL = {"runs", "calls", "compile_s", "call_s", "s_per_run", "runs_per_s", "runs_per_s_best"}
WIDTH = {
    "vector_runs",
    "compile_s",
    "fits",
    "calls",
    "call_s",
    "median_call_s",
    "runs_per_s",
    "runs_per_s_best",
    "xla_bytes_per_run",
    "fits_default_budget",
    "speedup",
    "speedup_best",
}
RESULT = {
    "setting",
    "config",
    "engine",
    "sequential",
    "widths",
    "stopped",
    "elapsed_s",
    "recommendation",
}
RECOMMENDATION = {
    "vector_runs",
    "runs_per_s",
    "fraction_of_best",
    "best_runs_per_s",
    "threshold",
    "speedup",
    "xla_bytes_per_run",
    "peak_bytes_in_use",
    "fits_default_budget",
}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    path = tmp_path_factory.mktemp("device") / "device.json"
    assert device.main(["--quick", "--settings", "paper", "--out", str(path)]) == 0
    return json.loads(path.read_text())


def test_quick_json_has_every_field(quick):
    assert MACHINE <= set(quick["machine"])
    assert quick["machine"]["cpu_count"] >= 1 and len(quick["machine"]["loadavg"]) == 3
    assert quick["options"]["quick"] is True
    (res,) = quick["results"]
    assert RESULT <= set(res)
    assert res["setting"] == "paper" and res["engine"] == "dense"
    assert SEQUENTIAL | MEMORY | DEVICE_MEMORY <= set(res["sequential"])
    assert res["widths"], res["stopped"]
    for row in res["widths"]:
        assert WIDTH | MEMORY | DEVICE_MEMORY <= set(row)
        assert row["fits"] and row["calls"] == len(row["call_s"]) >= 1
    assert RECOMMENDATION <= set(res["recommendation"])


def test_quick_numbers(quick):
    (res,) = quick["results"]
    assert res["sequential"]["runs_per_s"] > 0
    measured = [row["vector_runs"] for row in res["widths"]]
    assert set(measured) <= set(quick["options"]["widths"])
    for row in res["widths"]:
        assert row["runs_per_s"] > 0 and row["runs_per_s_best"] > 0
        assert math.isfinite(row["speedup"]) and row["speedup"] > 0
        assert math.isfinite(row["speedup_best"]) and row["speedup_best"] > 0
        assert row["xla_bytes"] is None or row["xla_bytes"] > 0
    rec = res["recommendation"]
    assert rec["vector_runs"] in measured
    assert rec["fraction_of_best"] >= rec["threshold"]


def row(width: int, runs_per_s: float) -> dict:
    return {
        "vector_runs": width,
        "runs_per_s": runs_per_s,
        "speedup": runs_per_s,
        "xla_bytes_per_run": 1000.0,
        "fits_default_budget": True,
    }


def test_recommend_takes_the_smallest_width_within_ten_percent():
    rows = [row(8, 10.0), row(16, 17.0), row(32, 19.5), row(64, 20.0), row(128, 17.0)]
    assert device.recommend(rows)["vector_runs"] == 32
    assert device.recommend(rows, threshold=0.8)["vector_runs"] == 16
    assert device.recommend([row(8, 3.0)])["fraction_of_best"] == 1.0
    assert device.recommend([]) is None


def test_settings_follow_the_presets():
    paper = device.paper_sweep(100, 4)
    assert (paper.cfg.n, paper.cfg.d, paper.cfg.m, paper.cfg.n_test) == (200, 2000, 20, 1000)
    assert paper.cfg.engine == "dense" and paper.n_runs == 4
    kou = device.kou_sweep(100, 4)
    assert (kou.cfg.n, kou.cfg.d, kou.cfg.m, kou.cfg.steps) == (20, 1090, 10, 100)
    plan = nj.plan(kou, vector_runs=4, chunk_runs=4)
    assert plan.buckets[0].cfg.step_engine == "wishart"


def test_bad_widths_are_refused():
    with pytest.raises(SystemExit):
        device.parse(["--widths", "0"])
