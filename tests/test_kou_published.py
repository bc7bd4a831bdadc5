"""The published-table check of benchmarks/bench_kou_sequential.py: its data and its verdict.

The check compares cell means of 10 random repeats with Kou et al.'s published cell means; it
must call a seed-sized difference "within seed error" and a shift of a few seed errors not.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import bench_kou_sequential as bench


def test_the_published_rows_are_complete_and_look_like_test_errors():
    table = bench.published()
    assert sorted(table) == [100, 350]
    for row in table.values():
        assert row.shape == (100,)
        assert np.all((row > 0.09) & (row < 0.52))
        assert abs(row[0] - 0.5) < 0.01  # b = 0: chance
        assert row[-10:].mean() < 0.15  # b near 10: near the flip rate 0.1


def test_the_verdict_follows_the_seed_error():
    rng = np.random.default_rng(0)
    cells = [(0.5 * s, 100) for s in range(40)]
    truth = {c: 0.1 + 0.3 * np.exp(-c[0]) for c in cells}
    theirs = {c: float(np.mean(truth[c] + 0.03 * rng.standard_normal(10))) for c in cells}
    ours = {c: list(truth[c] + 0.03 * rng.standard_normal(10)) for c in cells}
    same = bench.compare(ours, theirs)
    assert same["within_seed_error"] and 0.7 < same["ratio"] < 1.3
    shifted = bench.compare({c: [e - 0.03 for e in v] for c, v in ours.items()}, theirs)
    assert not shifted["within_seed_error"] and shifted["mean_diff"] < -0.02


def test_the_script_rerun_covers_the_published_sub_grid_with_twenty_repeats():
    rerun = bench.script_rerun()
    table = bench.published()
    assert sorted(rerun) == sorted((round(0.1 * s, 1), d) for d in table for s in range(0, 100, 5))
    for errs in rerun.values():
        assert errs.shape == (20,)
        assert np.all((errs >= 0) & (errs <= 1))
        np.testing.assert_allclose(errs * 1000, np.rint(errs * 1000), atol=1e-6)  # k / 1000


def test_their_own_script_sits_below_their_table_by_more_than_seed_error():
    """What docs/neighbours.md reports: the table is not what the published script gives. A
    rerun within seed error of the table would fail this (and the docs would be wrong)."""
    table = bench.published()
    rerun = bench.script_rerun()
    theirs = {(b, d): float(table[d][round(b * 10)]) for b, d in rerun}
    result = bench.compare({c: list(v) for c, v in rerun.items()}, theirs)
    assert not result["within_seed_error"]
    assert -0.02 < result["mean_diff"] < -0.008
    assert result["mean_diff"] + 3 * result["mean_diff_se"] < 0


def test_a_rerun_compared_with_itself_is_within_seed_error_and_with_a_shift_not():
    rerun = bench.script_rerun()
    rng = np.random.default_rng(1)
    halves = {c: list(rng.permutation(v)[:10]) for c, v in rerun.items()}
    assert bench.compare(halves, rerun)["within_seed_error"]
    shifted = {c: [e + 0.03 for e in v] for c, v in halves.items()}
    assert not bench.compare(shifted, rerun)["within_seed_error"]


def test_shared_seeds_take_the_standard_error_from_the_spread_over_seeds():
    """The preset runs seeds 0..9 in every cell, so a seed's errors move together across cells:
    the spread over the 40 cells then understates the error of their mean, and only the spread
    over the seeds gives it."""
    rng = np.random.default_rng(1)
    cells = [(0.25 * s, 350) for s in range(40)]
    truth = {c: 0.1 + 0.3 * np.exp(-c[0]) for c in cells}
    seed_effect = 0.02 * rng.standard_normal(10)  # one draw per seed, shared by every cell
    ours = {c: list(truth[c] + seed_effect + 0.01 * rng.standard_normal(10)) for c in cells}
    assert abs(seed_effect.mean()) > 0.004  # the draw this test needs: a visible seed effect
    assert not bench.compare(ours, truth)["within_seed_error"]
    shared = bench.compare(ours, truth, shared_seeds=True)
    assert shared["within_seed_error"] and shared["mean_diff_se"] > 0.004
    shifted = {c: [e + 0.05 for e in v] for c, v in ours.items()}
    assert not bench.compare(shifted, truth, shared_seeds=True)["within_seed_error"]


def test_a_check_step_the_rerun_does_not_cover_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--check", "--check-every", "7"])
    assert exit_.value.code == 2
    assert "--check-every=7 is invalid: allowed 5, 10, 15" in capsys.readouterr().err
