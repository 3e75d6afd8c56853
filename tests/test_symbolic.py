"""The sympy delta method against its closed forms, finite differences and Monte Carlo (Chapters 2 and 3)."""

import numpy as np
import pytest
import sympy as sp

from physmis_edu.sensitivity import delta_method_numeric
from physmis_edu.symbolic import (SIGMA, closed_form_delta, delta_method_1d, delta_method_curve, delta_method_expr,
                                  sinusoid_recovery_expr, toy_delta)
from physmis_edu.tasks import CurveToy, DampedOscillator, InverseMap1D, LogisticMap, Sinusoid

c = sp.Symbol("c", real=True)


def test_one_dimensional_derivation_has_the_textbook_form():
    g = sp.Function("g")(c)
    drift, spread = delta_method_1d(g, c)
    assert sp.simplify(drift + SIGMA**2 * g.diff(c, 2) / (2 * g.diff(c) ** 3)) == 0
    assert sp.simplify(spread - SIGMA**2 / g.diff(c) ** 2) == 0


def test_curve_derivation_depends_on_speed_change_not_bending():
    f, h = sp.Function("f")(c), sp.Function("h")(c)
    drift, spread = delta_method_curve([f, h], c)
    speed2 = f.diff(c) ** 2 + h.diff(c) ** 2
    expected_drift = -SIGMA**2 * (f.diff(c) * f.diff(c, 2) + h.diff(c) * h.diff(c, 2)) / (2 * speed2**2)
    assert sp.simplify(drift - expected_drift) == 0
    assert sp.simplify(spread - SIGMA**2 / speed2) == 0
    # A circle at constant angular speed: bent, but no drift.
    circle_drift, _ = delta_method_curve([sp.cos(c), sp.sin(c)], c)
    assert sp.simplify(circle_drift) == 0


def _antithetic_monte_carlo(task, x0, sigma, n, rng):
    """Mean shift (with its standard error) and variance of M(x0 + e), e ~ N(0, sigma^2 I).

    Pairing e with -e cancels the linear term exactly, so the standard error of the drift
    is of order sigma^2 / sqrt(n) instead of sigma / sqrt(n).
    """
    e = sigma * rng.standard_normal((n,) + x0.shape[1:])
    up, down, centre = task.measure(x0 + e), task.measure(x0 - e), task.measure(x0)[0]
    pair = 0.5 * (up + down) - centre
    return pair.mean(), pair.std() / np.sqrt(n), np.var(np.concatenate([up, down]) - centre)


@pytest.mark.parametrize("task, controls, sigma, n", [
    (InverseMap1D(slope_variation=0.8), [0.1, 0.35, 0.7], 0.003, 40000),
    (InverseMap1D(slope_variation=0.8, length=4), [0.35], 0.006, 40000),
    (CurveToy(), [0.35, 0.8], 0.01, 20000),
])
def test_toy_delta_method_agrees_with_monte_carlo(task, controls, sigma, n):
    rng = np.random.default_rng(0)
    drift_spread = toy_delta(task)
    for control in controls:
        # Clean float64 trajectories, so that float32 rounding does not enter the comparison.
        x0 = (task.g([control])[:, None] if isinstance(task, InverseMap1D) else task.gamma([control]))[:, None, :]
        x0 = np.repeat(x0, task.length, axis=1)
        drift, spread = drift_spread(np.array([control]), sigma)
        mc_drift, se, mc_var = _antithetic_monte_carlo(task, x0, sigma, n, rng)
        # 4 Monte Carlo standard errors, plus 2% for the neglected O(sigma^4) terms
        # (measured: about 0.5% at these noise levels, 5% at three times the noise).
        assert abs(mc_drift - drift[0]) < 4 * se + 0.02 * abs(drift[0])
        assert abs(mc_drift) > 10 * se  # the drift is resolved, not just bounded
        # The variance of 2n draws has relative standard error sqrt(2 / (2n)).
        assert mc_var == pytest.approx(spread[0], rel=4 * np.sqrt(1 / n) + 0.02)


def test_toy_delta_matches_finite_differences_and_scales_with_length():
    for task in (InverseMap1D(bumps=2, slope_variation=-0.7), CurveToy(speed_variation=-0.4, fold=0.2)):
        controls = np.linspace(task.lo, task.hi, 7)
        points = task.g(controls)[:, None] if isinstance(task, InverseMap1D) else task.gamma(controls)
        drift, spread = toy_delta(task)(controls, 0.01)
        fd_drift, fd_spread = delta_method_numeric(task, points[:, None, :], sigma=0.01)
        # Second differences carry a rounding floor of about sigma^2 * 1e-16 / eps^2 = 1e-12.
        # Central differences with step 1e-4 err by eps^2 M''' / M', up to 1e-5 where g' = 0.3.
        np.testing.assert_allclose(drift, fd_drift, rtol=1e-4, atol=1e-11)
        np.testing.assert_allclose(spread, fd_spread, rtol=1e-4)
    long = toy_delta(InverseMap1D(length=9))(np.array([0.3]), 0.03)
    short = toy_delta(InverseMap1D())(np.array([0.3]), 0.01)
    np.testing.assert_allclose(long, short, rtol=1e-12)


def test_closed_form_sinusoid_delta_agrees_with_monte_carlo_and_finite_differences():
    task = Sinusoid()
    x, _ = task.sample(3, rng=2)
    x = x.astype(np.float64)
    drift, spread = closed_form_delta(task)(x, 0.003)
    fd_drift, fd_spread = delta_method_numeric(task, x, sigma=0.003)
    np.testing.assert_allclose(drift, fd_drift, rtol=1e-4)
    np.testing.assert_allclose(spread, fd_spread, rtol=1e-6)
    rng = np.random.default_rng(1)
    n = 20000
    for i in range(3):
        mc_drift, se, mc_var = _antithetic_monte_carlo(task, x[i:i + 1], 0.003, n, rng)
        assert abs(mc_drift - drift[i]) < 4 * se + 0.02 * abs(drift[i])
        assert mc_var == pytest.approx(spread[i], rel=4 * np.sqrt(1 / n) + 0.02)


def test_closed_form_logistic_delta_matches_finite_differences():
    task = LogisticMap(length=16)
    x, _ = task.sample(4, rng=0)
    drift, spread = closed_form_delta(task)(x, 0.01)
    fd_drift, fd_spread = delta_method_numeric(task, x.astype(np.float64), sigma=0.01)
    np.testing.assert_allclose(drift, fd_drift, rtol=1e-4)
    np.testing.assert_allclose(spread, fd_spread, rtol=1e-6)


def test_small_symbolic_fit_is_readable():
    recovery, xs = sinusoid_recovery_expr(4)
    assert len(xs) == 4 and recovery.func == sp.acos
    drift, spread = delta_method_expr(recovery, xs)
    # On a clean sinusoid the fit returns omega itself.
    omega, phase = 0.7, 0.3
    point = {x: sp.sin(omega * t + phase) for t, x in enumerate(xs)}
    assert float(recovery.subs(point)) == pytest.approx(omega, abs=1e-12)
    # Drift and spread match finite differences of the same fit at sigma = 0.01.
    values = np.array([[float(point[x])] for x in xs])[None]
    fd_drift, fd_spread = delta_method_numeric(Sinusoid(length=4), values, sigma=0.01)
    at = {**point, SIGMA: 0.01}
    assert float(drift.subs(at)) == pytest.approx(fd_drift[0], rel=1e-3)
    assert float(spread.subs(at)) == pytest.approx(fd_spread[0], rel=1e-5)
    assert float(spread.subs(at)) > 0


def test_wrong_task_raises():
    with pytest.raises(ValueError, match="InverseMap1D or a CurveToy"):
        toy_delta(Sinusoid())
    with pytest.raises(ValueError, match="Sinusoid or a LogisticMap"):
        closed_form_delta(DampedOscillator())
    with pytest.raises(ValueError, match="sigma"):
        toy_delta(InverseMap1D())(np.array([0.5]), -1.0)
