"""Theory formulas against hand-computed values; fits against SciPy and known answers."""

import math

import numpy as np
import pytest
import scipy.stats

from noisyjax import analysis
from noisyjax.errors import ConfigError
from noisyjax.synthetic import theory


def test_snr_and_n_snr2_by_hand():
    # ||mu|| = 7, sigma_p = 1, d = 2000: SNR = 7 / sqrt(2000); n SNR^2 = 200 * 49 / 2000 = 4.9.
    assert theory.snr(7.0, 1.0, 2000) == pytest.approx(7.0 / math.sqrt(2000))
    assert theory.n_snr2(200, 7.0, 1.0, 2000) == pytest.approx(4.9)
    assert theory.n_snr2(100, 2.0, 0.5, 400) == pytest.approx(100 * 4 / (0.25 * 400))
    assert theory.mu_norm_for(4.9, 200, 1.0, 2000) == pytest.approx(7.0)


def test_t1_scale_by_hand():
    # 200 * 20 / (0.05 * 1 * 2000) = 40 steps; sigma_p = 2 divides by 4.
    assert theory.t1_scale(200, 20, 0.05, 1.0, 2000) == pytest.approx(40.0)
    assert theory.t1_scale(200, 20, 0.05, 2.0, 2000) == pytest.approx(10.0)
    exps = theory.T1_EXPONENTS
    base = theory.t1_scale(50, 8, 0.1, 1.0, 500)
    assert theory.t1_scale(100, 8, 0.1, 1.0, 500) / base == pytest.approx(2.0 ** exps["n"])
    assert theory.t1_scale(50, 8, 0.2, 1.0, 500) / base == pytest.approx(2.0 ** exps["eta"])
    assert theory.t1_scale(50, 16, 0.1, 1.0, 500) / base == pytest.approx(2.0 ** exps["m"])
    assert theory.t1_scale(50, 8, 0.1, 1.0, 1000) / base == pytest.approx(2.0 ** exps["d"])


def test_rate_heuristic_and_boundary_by_hand():
    # n SNR^2 = 4.9, tau = 0.2: 4.9 * 0.6 / 2 = 1.47 (docs/core.md); boundary 2 / 0.6.
    assert theory.rate_ratio(4.9, 0.2) == pytest.approx(1.47)
    assert theory.stage_one_boundary(0.2) == pytest.approx(10.0 / 3.0)
    assert theory.stage_one_boundary(0.0) == pytest.approx(2.0)
    tau = np.array([0.0, 0.1, 0.3])
    np.testing.assert_allclose(theory.rate_ratio(theory.stage_one_boundary(tau), tau), 1.0)
    with pytest.raises(ConfigError, match="tau"):
        theory.stage_one_boundary(0.5)
    with pytest.raises(ConfigError, match="tau"):
        theory.rate_ratio(4.0, -0.1)


def test_early_stopping_and_stage_two_and_kou_by_hand():
    assert theory.early_stopping_error(2.0, 0.5) == pytest.approx(math.exp(-1.0))
    assert theory.early_stopping_error(10.0, 0.1, scale=0.3) == pytest.approx(0.3 / math.e)
    assert theory.stage_two_error_bound(0.2, 0.1) == pytest.approx(0.05)
    # Kou et al. setting: n = 20, ||mu|| = 2, sigma_p = 1, d = 100: 20 * 16 / 100 = 3.2.
    assert theory.kou_ratio(20, 2.0, 1.0, 100) == pytest.approx(3.2)
    assert theory.kou_boundary_mu_norm(20, 1.0, 320) == pytest.approx(2.0)
    assert theory.kou_ratio(20, theory.kou_boundary_mu_norm(20, 1.0, 700, c=3.0), 1.0, 700) == (
        pytest.approx(3.0)
    )


@pytest.mark.parametrize("dof", [1, 3, 10, 57])
def test_student_t_quantile_matches_scipy(dof):
    for p in (0.6, 0.9, 0.975, 0.995, 0.025):
        assert analysis.student_t_quantile(p, dof) == pytest.approx(
            scipy.stats.t.ppf(p, dof), rel=1e-6, abs=1e-7
        )


def test_loglog_fit_recovers_exponents_and_matches_scipy():
    rng = np.random.default_rng(0)
    eta, n = np.meshgrid([0.05, 0.1, 0.2], [50, 100, 200], indexing="ij")
    eta, n = np.repeat(eta.ravel(), 4), np.repeat(n.ravel(), 4)
    t = 3.0 * n / eta * np.exp(0.05 * rng.standard_normal(eta.size))
    fit = analysis.loglog_fit({"eta": eta, "n": n}, t)
    assert fit.coef[1] == pytest.approx(-1.0, abs=0.05)
    assert fit.coef[2] == pytest.approx(1.0, abs=0.05)
    assert np.all(fit.ci_low < fit.coef) and np.all(fit.coef < fit.ci_high)
    # One regressor: SciPy's linregress gives the same slope and standard error.
    ref = scipy.stats.linregress(np.log(n), np.log(t))
    one = analysis.loglog_fit({"n": n}, t)
    assert one.coef[1] == pytest.approx(ref.slope)
    assert one.stderr[1] == pytest.approx(ref.stderr)
    half = scipy.stats.t.ppf(0.975, n.size - 2) * ref.stderr
    assert one.ci_high[1] - one.coef[1] == pytest.approx(half, rel=1e-6)


def test_loglog_fit_drops_missing_times():
    t = np.array([10.0, 20.0, -1.0, 40.0, np.nan])
    fit = analysis.loglog_fit({"n": np.array([1.0, 2.0, 3.0, 4.0, 5.0])}, t)
    assert fit.dof == 1  # three usable rows, two coefficients
    assert fit.coef[1] == pytest.approx(1.0)


def test_exp_decay_fit_recovers_rate():
    x = np.linspace(1, 10, 10)
    fit = analysis.exp_decay_fit(x, 0.4 * np.exp(-0.3 * x))
    assert fit.coef[1] == pytest.approx(0.3)
    assert math.exp(fit.coef[0]) == pytest.approx(0.4)
    with pytest.raises(ConfigError, match="rows"):
        analysis.exp_decay_fit(x[:2], np.array([0.1, 0.0]))


def test_first_step_below():
    step = np.array([0, 2, 4, 6])
    v = np.array([[1.0, 0.5, 0.2, 0.1], [1.0, 0.9, np.nan, 0.8]])
    np.testing.assert_array_equal(analysis.first_step_below(step, v, 0.3), [4, np.nan])
