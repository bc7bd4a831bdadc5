"""Early-stopping rules against step-by-step loops on small arrays."""

import numpy as np
import pytest
import xarray as xr

from noisyjax.analysis import early_stopping as es
from noisyjax.errors import ConfigError


def brute_online(val, patience):
    """Train step by step; stop once `patience` points pass without improvement; keep best."""
    best, best_t = np.inf, 0
    for t, v in enumerate(val):
        if v < best:
            best, best_t = v, t
        elif t - best_t >= patience:
            return best_t
    return best_t


def test_oracle_picks_first_minimum():
    step = np.array([0, 5, 10, 15])
    err = np.array([[0.5, 0.1, 0.1, 0.3], [0.2, np.nan, 0.3, 0.0]])
    stop = es.oracle(step, err)
    np.testing.assert_array_equal(stop.step, [5, 15])
    np.testing.assert_array_equal(stop.test_err, [0.1, 0.0])


@pytest.mark.parametrize("patience", [None, 1, 2, 4])
def test_validation_rule_matches_loop(patience):
    rng = np.random.default_rng(0)
    val = rng.integers(0, 6, (30, 12)).astype(float) / 10  # many ties
    test = rng.random((30, 12))
    step = np.arange(12) * 10
    stop = es.validation(step, val, test, patience)
    for r in range(30):
        t = int(np.argmin(val[r])) if patience is None else brute_online(val[r], patience)
        assert stop.index[r] == t
        assert stop.step[r] == step[t] and stop.test_err[r] == test[r, t]
    with pytest.raises(ConfigError, match="patience"):
        es.validation(step, val, test, 0)


def test_log2_rule_first_crossing_and_fallback():
    step = np.array([0, 1, 2, 3, 4])
    # n = 10, tau_hat = 0.2: stop when 8 of 10 losses are below log 2 (exact equality counts).
    acc = np.array([[0.5, 0.7, 0.8, 0.9, 1.0], [0.5, 0.6, 0.7, 0.7, 0.7]])
    test = np.array([[0.4, 0.2, 0.05, 0.06, 0.1], [0.4, 0.3, 0.3, 0.3, 0.3]])
    stop = es.log2(step, acc, test, 0.2)
    np.testing.assert_array_equal(stop.step, [2, 4])  # second run never reaches: last step
    np.testing.assert_array_equal(stop.test_err, [0.05, 0.3])
    per_run = es.log2(step, acc, test, np.array([0.0, 0.3]))
    np.testing.assert_array_equal(per_run.step, [4, 2])
    for bad in (0.5, -0.1, np.nan, np.array([0.1, 0.7])):  # one range with the small-loss rule
        with pytest.raises(ConfigError, match="tau_hat"):
            es.log2(step, acc, test, bad)
    np.testing.assert_array_equal(es.check_tau_hat([0.0, 0.49]), [0.0, 0.49])


def test_stopping_table_on_a_sweep_dataset():
    step = np.array([0, 10, 20, 30])
    test = np.array([[[0.5, 0.1, 0.2, 0.3]], [[0.5, 0.3, 0.0, 0.2]]])  # (tau, seed, step)
    val = np.array([[[0.6, 0.4, 0.2, 0.3]], [[0.5, 0.5, 0.5, 0.5]]])
    acc = np.array([[[0.5, 0.9, 0.95, 1.0]], [[0.5, 0.6, 0.8, 1.0]]])
    dims = ("tau", "seed", "step")
    ds = xr.Dataset(
        {
            "test_err": (dims, test),
            "val_err_noisy_labels": (dims, val),
            "train_acc": (dims, acc),
            "t1_test_err": (("tau", "seed"), [[0.1], [0.3]]),
        },
        coords={
            "tau": [0.1, 0.2],
            "seed": [0],
            "step": step,
            # Overall rates (tau_plus + tau_minus) / 2 = 0.1 and 0.2.
            "tau_plus": ("tau", [0.1, 0.3]),
            "tau_minus": ("tau", [0.1, 0.1]),
        },
    )
    table = es.stopping_table(ds)
    assert table["oracle_step"].values.tolist() == [[10], [20]]
    assert table["validation_step"].values.tolist() == [[20], [0]]
    assert table["validation_test_err"].values.tolist() == [[0.2], [0.5]]
    assert table["log2_step"].values.tolist() == [[10], [20]]  # 1 - tau = 0.9 and 0.8
    assert table["final_test_err"].values.tolist() == [[0.3], [0.2]]
    fixed = es.stopping_table(ds.drop_vars("val_err_noisy_labels"), tau_hat=0.0)
    assert "validation_step" not in fixed
    assert fixed["log2_step"].values.tolist() == [[30], [30]]
