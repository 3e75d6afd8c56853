"""Sensitivity and ambiguity of recoveries (Chapter 3)."""

import numpy as np
import pytest

from physmis_edu.sensitivity import (ambiguity, condition_profile, delta_method_numeric, numerical_gradient,
                                     sensitivity)
from physmis_edu.tasks import CurveToy, InverseMap1D, LogisticMap, Sinusoid


def test_gradient_of_the_inverse_map_is_one_over_slope():
    task = InverseMap1D(length=4)
    c = np.linspace(0, 1, 9)
    grad = numerical_gradient(task, task.generate(c))
    assert grad.shape == (9, 4, 1)
    # M = g^-1(mean of the 4 observations): each observation carries 1 / (4 g').
    np.testing.assert_allclose(grad[:, :, 0], np.repeat(1 / (4 * task.slope(c))[:, None], 4, axis=1), rtol=1e-5)


def test_sensitivity_is_largest_where_the_slope_is_smallest():
    task = InverseMap1D(slope_variation=0.8)
    c = np.linspace(0, 1, 101)
    s = sensitivity(task, task.g(c)[:, None, None])
    np.testing.assert_allclose(s, 1 / task.slope(c), rtol=1e-6)
    assert np.argmax(s) == 50 and s[50] / s[0] == pytest.approx(1.8 / 0.2, rel=1e-5)


def test_curve_sensitivity_is_one_over_speed():
    task = CurveToy(speed_variation=0.6)
    c = np.linspace(0, 1, 41)
    s = sensitivity(task, task.gamma(c)[:, None, :])
    np.testing.assert_allclose(s, 1 / task.speed(c), rtol=1e-5)
    assert s[20] > 2 * max(s[0], s[-1])  # slow middle, fast ends


def test_ambiguity_is_small_only_where_windings_lie_side_by_side():
    c = np.linspace(0, 1, 1501)
    medians = {}
    for fold in (0.1, 0.2):
        task = CurveToy(fold=fold, speed_variation=0.0)  # 1.5 turns: first third runs beside the last
        a = ambiguity(task, task.gamma(c)[:, None, :], c, min_control_gap=0.3)
        beside, middle = (c > 0.05) & (c < 0.28), (c > 0.4) & (c < 0.6)
        medians[fold] = np.median(a[beside])
        # Beside the other winding the nearest distant control is one radial gap (= fold) away.
        assert medians[fold] == pytest.approx(fold, rel=0.1)
        assert a[middle].min() > 3 * fold
    assert medians[0.1] < medians[0.2]


def test_ambiguity_defaults_and_edge_cases():
    task = InverseMap1D()
    c = np.linspace(0, 1, 11)
    x = task.g(c)[:, None, None]
    # No fold in 1-D: the nearest control more than 0.25 away is 3 grid steps (0.3) to either side.
    a = ambiguity(task, x, min_control_gap=0.25)
    expected = [min(abs(task.g(c[j]) - task.g(ci)) for j in (i - 3, i + 3) if 0 <= j < 11) for i, ci in enumerate(c)]
    np.testing.assert_allclose(a, expected, rtol=1e-9, atol=1e-12)
    assert np.isinf(ambiguity(task, x[:2], c[:2], min_control_gap=0.5)).all()
    assert np.all(np.isfinite(ambiguity(task, x, c)))  # default gap: a tenth of the range
    with pytest.raises(ValueError, match="one control per trajectory"):
        ambiguity(task, x, c[:5])
    with pytest.raises(ValueError, match="NaN"):
        ambiguity(task, x, np.where(c > 0.5, np.nan, c))
    with pytest.raises(ValueError, match="min_control_gap"):
        ambiguity(task, x, c, min_control_gap=-1.0)


def test_condition_profile_follows_the_recovery():
    profile = condition_profile(InverseMap1D(), np.linspace(0, 1, 5), n_per=3, rng=0)
    np.testing.assert_allclose(profile.mean, 1 / InverseMap1D().slope(np.linspace(0, 1, 5)), rtol=1e-5)
    sine = condition_profile(Sinusoid(), np.array([0.3, 0.75, 1.2]), n_per=64, rng=0)
    # d arccos / d cos = 1 / sin(omega): low frequencies are the ill-conditioned end.
    assert sine.mean[0] > 2 * sine.mean[-1]
    assert np.all(sine.q10 <= sine.mean) and np.all(sine.mean <= sine.q90)
    with pytest.raises(ValueError, match="outside"):
        condition_profile(Sinusoid(), np.array([0.1]))


def test_delta_method_numeric_isotropic_equals_identity_covariance():
    task = LogisticMap()
    x, _ = task.sample(4, rng=0)
    d1, s1 = delta_method_numeric(task, x, sigma=0.01)
    d2, s2 = delta_method_numeric(task, x, cov=1e-4 * np.eye(32))
    np.testing.assert_allclose(d1, d2, rtol=1e-6)
    np.testing.assert_allclose(s1, s2, rtol=1e-6)


def test_delta_method_numeric_matches_monte_carlo_for_correlated_noise():
    task = Sinusoid()
    x, _ = task.sample(1, rng=3)
    x = x.astype(np.float64)
    t = np.arange(32)
    sigma, ell = 0.003, 3.0
    cov = sigma**2 * np.exp(-0.5 * (t[:, None] - t[None, :]) ** 2 / ell**2)
    drift, spread = delta_method_numeric(task, x, cov=cov)
    rng = np.random.default_rng(0)
    n = 20000
    e = (rng.standard_normal((n, 32)) @ np.linalg.cholesky(cov + 1e-15 * np.eye(32)).T)[:, :, None]
    up, down, centre = task.measure(x + e), task.measure(x - e), task.measure(x)[0]
    pair = 0.5 * (up + down) - centre  # antithetic pairs cancel the linear term
    se = pair.std() / np.sqrt(n)
    # 4 standard errors of the Monte Carlo, plus 3% for the neglected O(sigma^4) terms.
    assert abs(pair.mean() - drift[0]) < 4 * se + 0.03 * abs(drift[0])
    variance = np.var(np.concatenate([up, down]) - centre)
    assert variance == pytest.approx(spread[0], rel=4 * np.sqrt(2 / n) + 0.03)


def test_bad_arguments_raise():
    task = InverseMap1D()
    x = task.generate([0.5])
    with pytest.raises(ValueError, match="exactly one"):
        delta_method_numeric(task, x)
    with pytest.raises(ValueError, match="exactly one"):
        delta_method_numeric(task, x, sigma=0.1, cov=np.eye(1))
    with pytest.raises(ValueError, match="shape"):
        delta_method_numeric(task, x, cov=np.eye(2))
    with pytest.raises(ValueError, match="semi-definite"):
        delta_method_numeric(task, x, cov=-np.eye(1))
    with pytest.raises(ValueError, match="sigma"):
        delta_method_numeric(task, x, sigma=-0.1)
    with pytest.raises(ValueError, match="eps"):
        numerical_gradient(task, x, eps=0.0)
    with pytest.raises(ValueError, match="3 dimensions"):
        sensitivity(task, x[:, :, 0])
    with pytest.raises(ValueError, match="NaN"):
        sensitivity(task, np.full((1, 1, 1), np.nan))


@pytest.mark.parametrize("lo, hi", [(2.9, 3.5), (3.6, 4.0)])
def test_logistic_bias_formula_matches_monte_carlo_and_sympy(lo, hi):
    """Chapter 4's second-order bias of r_hat: all three terms, against antithetic Monte Carlo."""
    from physmis_edu.sensitivity import logistic_bias_terms
    from physmis_edu.symbolic import closed_form_delta

    task, sigma = LogisticMap(lo=lo, hi=hi), 0.005
    x, r = task.sample(400, rng=0)
    x = x.astype(np.float64)
    terms = logistic_bias_terms(x, sigma)
    np.testing.assert_allclose(terms["total"], closed_form_delta(task)(x, sigma)[0], rtol=1e-6, atol=1e-12)
    rng = np.random.default_rng(1)
    # Antithetic pairs x + e, x - e cancel the first-order error exactly, leaving the bias.
    per_trajectory = np.mean([0.5 * (task.measure(x + e) + task.measure(x - e)) - r
                              for e in sigma * rng.standard_normal((100, *x.shape))], axis=0)
    diff = per_trajectory - terms["total"]
    se = diff.std() / np.sqrt(diff.size)
    assert abs(diff.mean()) < 4 * se + 1e-7
    # The curvature term alone (the formula Chapter 4 used to print) misses by far more than the noise.
    assert abs(per_trajectory.mean() - terms["curvature"].mean()) > 10 * se
    assert terms["covariance"].shape == (400,)
