"""The published-table check of benchmarks/bench_kou_sequential.py: its data and its verdict.

The check compares cell means of 10 random repeats with Kou et al.'s published cell means; it
must call a seed-sized difference "within seed error" and a shift of a few seed errors not.
"""

from __future__ import annotations

import numpy as np

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
