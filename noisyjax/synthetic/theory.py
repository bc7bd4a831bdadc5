"""Closed-form predictions and heuristics of the theory, for overlays and checks.

Every function is plain NumPy and broadcasts over its arguments. References are to docs/science.md:
  snr, n_snr2            section 2: SNR = ||mu|| / (sigma_p sqrt(d)); regime n SNR^2 = Theta(1).
  t1_scale               section 6.4: Stage I lasts ~ n m / (eta sigma_p^2 d) steps (theory).
  rate_ratio             section 6.9 (heuristic): gamma / rho_bar ~ n SNR^2 (1 - 2 tau) / 2.
  stage_one_boundary     section 6.9 (heuristic): Stage I visible when rate_ratio > 1.
  early_stopping_error   section 6.7: the error stopped at t1 is about exp(-c d / n).
  stage_two_error_bound  section 6.10: Stage II test error >= 0.5 min(tau_plus, tau_minus).
  kou_ratio, kou_boundary_mu_norm  section 7: benign overfitting of Kou et al. (2023) when
                         n ||mu||^4 / (sigma_p^4 d) is large, harmful when it is small.
"""

from __future__ import annotations

import numpy as np

from noisyjax.errors import fail

ArrayLike = float | np.ndarray

# The exponents of t1 ~ eta^-1 n^1 m^1 d^-1 (docs/science.md section 6.4), by swept field.
T1_EXPONENTS = {"eta": -1.0, "n": 1.0, "m": 1.0, "d": -1.0}


def snr(mu_norm: ArrayLike, sigma_p: ArrayLike, d: ArrayLike) -> np.ndarray:
    """SNR = ||mu|| / (sigma_p sqrt(d))."""
    return np.asarray(mu_norm, float) / (np.asarray(sigma_p, float) * np.sqrt(d))


def n_snr2(n: ArrayLike, mu_norm: ArrayLike, sigma_p: ArrayLike, d: ArrayLike) -> np.ndarray:
    """n SNR^2 = n ||mu||^2 / (sigma_p^2 d)."""
    return np.asarray(n, float) * snr(mu_norm, sigma_p, d) ** 2


def mu_norm_for(n_snr2_value: ArrayLike, n: ArrayLike, sigma_p: ArrayLike, d: ArrayLike):
    """The ||mu|| that gives a target n SNR^2: sqrt(n SNR^2 sigma_p^2 d / n)."""
    return np.sqrt(np.asarray(n_snr2_value, float) * np.asarray(sigma_p, float) ** 2 * d / n)


def t1_scale(
    n: ArrayLike, m: ArrayLike, eta: ArrayLike, sigma_p: ArrayLike, d: ArrayLike
) -> np.ndarray:
    """The theory's Stage-I time scale n m / (eta sigma_p^2 d), in steps (constants dropped)."""
    return np.asarray(n, float) * np.asarray(m, float) / (np.asarray(eta, float) * sigma_p**2 * d)


def rate_ratio(n_snr2_value: ArrayLike, tau: ArrayLike) -> np.ndarray:
    """Heuristic growth-rate ratio gamma / rho_bar ~ n SNR^2 (1 - 2 tau) / 2 (section 6.9).

    Clean samples push gamma up and flipped ones push it down, hence the net (1 - 2 tau).
    """
    tau = np.asarray(tau, float)
    if np.any((tau < 0) | (tau >= 0.5)):
        fail("tau", tau, "values in [0, 0.5)")
    return np.asarray(n_snr2_value, float) * (1.0 - 2.0 * tau) / 2.0


def stage_one_boundary(tau: ArrayLike, level: float = 1.0) -> np.ndarray:
    """The n SNR^2 at which the heuristic ratio equals `level`: 2 level / (1 - 2 tau).

    Stage I is predicted visible above this curve (section 6.9, a heuristic).
    """
    tau = np.asarray(tau, float)
    if np.any((tau < 0) | (tau >= 0.5)):
        fail("tau", tau, "values in [0, 0.5)")
    return 2.0 * level / (1.0 - 2.0 * tau)


def early_stopping_error(d_over_n: ArrayLike, c: float, scale: float = 1.0) -> np.ndarray:
    """The early-stopped test error scale `scale` exp(-c d / n) (section 6.7)."""
    return scale * np.exp(-c * np.asarray(d_over_n, float))


def stage_two_error_bound(tau_plus: ArrayLike, tau_minus: ArrayLike) -> np.ndarray:
    """The paper's Stage-II lower bound 0.5 min(tau_plus, tau_minus) (section 6.10)."""
    return 0.5 * np.minimum(np.asarray(tau_plus, float), np.asarray(tau_minus, float))


def kou_ratio(n: ArrayLike, mu_norm: ArrayLike, sigma_p: ArrayLike, d: ArrayLike) -> np.ndarray:
    """Kou et al.'s order parameter n ||mu||^4 / (sigma_p^4 d): benign when large (section 7)."""
    return np.asarray(n, float) * np.asarray(mu_norm, float) ** 4 / (sigma_p**4 * d)


def kou_boundary_mu_norm(
    n: ArrayLike, sigma_p: ArrayLike, d: ArrayLike, c: float = 1.0
) -> np.ndarray:
    """The ||mu|| with n ||mu||^4 = c sigma_p^4 d: (c sigma_p^4 d / n)^(1/4), c unknown."""
    return (c * np.asarray(sigma_p, float) ** 4 * np.asarray(d, float) / n) ** 0.25
