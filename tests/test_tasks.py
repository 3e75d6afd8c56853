"""Tasks: exact recovery on clean data, determinism, failures with reasons, bad input (Chapters 2 and 4)."""

import numpy as np
import pytest

from physmis_edu.tasks import (CurveToy, DampedOscillator, InverseMap1D, LogisticMap, Prior, Sinusoid,
                               lyapunov_exponent)

TASKS = {
    "inverse map": lambda: InverseMap1D(),
    "inverse map, 3 bumps, L=4": lambda: InverseMap1D(lo=-2.0, hi=5.0, slope_variation=-0.9, bumps=3, length=4),
    "curve": lambda: CurveToy(),
    "curve, tight fold": lambda: CurveToy(fold=0.08, speed_variation=-0.9, turns=2.5, length=3),
    "sinusoid": lambda: Sinusoid(),
    "sinusoid, wide": lambda: Sinusoid(lo=0.05, hi=3.0, length=16),
    "damped oscillator": lambda: DampedOscillator(),
    "damped oscillator, undamped to strong": lambda: DampedOscillator(lo=0.0, hi=0.3, length=12),
    "logistic map": lambda: LogisticMap(),
    "logistic map, periodic": lambda: LogisticMap(lo=2.8, hi=3.4),
}


@pytest.fixture(params=sorted(TASKS))
def task(request):
    return TASKS[request.param]()


def test_recovery_is_exact_on_clean_data_over_the_whole_range(task):
    c = np.concatenate([[task.lo, task.hi], np.linspace(task.lo, task.hi, 2001)])
    x = task.generate(c, rng=0)
    recovery = task.recover(x)
    assert recovery.n_failed == 0
    # Trajectories are stored as float32 (relative rounding 6e-8); the worst condition
    # number of these recoveries turns that into at most a few 1e-7 of the range.
    np.testing.assert_allclose(recovery.values, c, rtol=0, atol=2e-6 * (task.hi - task.lo))


def test_shapes_dtype_and_determinism(task):
    x1, c1 = task.sample(7, rng=123)
    x2, c2 = task.sample(7, rng=123)
    x3, _ = task.sample(7, rng=124)
    assert x1.dtype == np.float32 and x1.shape == (7, task.length, task.channels)
    assert c1.dtype == np.float64 and c1.shape == (7,)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(c1, c2)
    assert not np.array_equal(x1, x3)
    assert task.measure(x1).shape == (7,)
    assert task.control_name in task.describe()


def test_nan_in_trajectory_is_a_counted_failure(task):
    x, c = task.sample(5, rng=1)
    x = x.copy()
    x[2, -1, 0] = np.nan
    recovery = task.recover(x)
    assert np.isnan(recovery.values[2]) and recovery.reasons[2] == "nan in trajectory"
    assert recovery.failure_counts() == {"nan in trajectory": 1}
    np.testing.assert_allclose(np.delete(recovery.values, 2), np.delete(c, 2), atol=2e-6 * (task.hi - task.lo))


def test_bad_input_raises(task):
    x, _ = task.sample(3, rng=0)
    with pytest.raises(ValueError, match="3 dimensions"):
        task.measure(x[:, :, 0])
    with pytest.raises(ValueError, match="empty"):
        task.measure(x[:0])
    with pytest.raises(ValueError, match="infinite"):
        task.measure(np.where(np.isfinite(x), np.inf, x))
    with pytest.raises(ValueError, match="length"):
        task.measure(np.concatenate([x, x], axis=1))
    with pytest.raises(ValueError, match="NaN"):
        task.generate([task.lo, np.nan])
    with pytest.raises(ValueError, match="outside"):
        task.generate([task.hi + 0.1 * (task.hi - task.lo)])
    with pytest.raises(ValueError, match="empty"):
        task.generate([])


@pytest.mark.parametrize("make", [
    lambda: InverseMap1D(lo=1.0, hi=1.0),
    lambda: InverseMap1D(lo=2.0, hi=1.0),
    lambda: InverseMap1D(noise=-0.1),
    lambda: InverseMap1D(slope_variation=1.0),
    lambda: InverseMap1D(bumps=0),
    lambda: CurveToy(fold=0.0),
    lambda: CurveToy(noise=-1e-3),
    lambda: CurveToy(speed_variation=-1.5),
    lambda: CurveToy(inner_radius=0.01, fold=1.0, margin=0.5),
    lambda: Sinusoid(lo=0.5, hi=0.5),
    lambda: Sinusoid(hi=3.5),
    lambda: Sinusoid(length=2),
    lambda: Sinusoid(amp_lo=-1.0),
    lambda: DampedOscillator(lo=-0.1),
    lambda: DampedOscillator(omega_lo=0.0),
    lambda: DampedOscillator(length=3),
    lambda: LogisticMap(lo=3.9, hi=3.6),
])
def test_bad_construction_raises(make):
    with pytest.raises(ValueError):
        make()


def test_custom_prior_is_sampled():
    task = Sinusoid(prior=Prior(0.3, 1.2, density=lambda c: (c - 0.3) ** 2))
    _, c = task.sample(4000, rng=0)
    # Density proportional to (c - lo)^2: the upper third holds 1 - (2/3)^3 = 70% of the mass.
    assert abs(np.mean(c > 0.9) - (1 - (2 / 3) ** 3)) < 0.03
    with pytest.raises(ValueError, match="prior support"):
        Sinusoid(prior=Prior(0.0, 1.0))


# -- toys: recoveries beyond the range are reported, not clipped -------------------------
def test_inverse_map_is_defined_beyond_the_range():
    task = InverseMap1D()
    c = np.array([-0.3, 1.25])
    np.testing.assert_allclose(task.measure(task.g(c)[:, None, None]), c, atol=1e-12)
    np.testing.assert_allclose(task.g_inverse(task.g(np.linspace(-1, 2, 301))), np.linspace(-1, 2, 301), atol=1e-12)


def test_curve_beyond_its_end_is_out_of_support_then_a_failure():
    task = CurveToy()
    just_past = task.gamma(np.array([1.0 + 0.5 * task.margin, -0.5 * task.margin]))[:, None, :]
    np.testing.assert_allclose(task.measure(just_past), [1.0 + 0.5 * task.margin, -0.5 * task.margin], atol=1e-12)
    end = task.gamma(np.array([task.hi + task.margin]))[0]
    tangent = end - task.gamma(np.array([task.hi + task.margin - 1e-6]))[0]
    far_past = (end + 0.1 * tangent / np.linalg.norm(tangent))[None, None, :]
    recovery = task.recover(far_past)
    assert recovery.failure_counts() == {"beyond the end of the curve": 1}


def test_float64_recovery_is_exact_to_rounding():
    inverse = InverseMap1D(slope_variation=0.95)
    c = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(inverse.measure(inverse.g(c)[:, None, None]), c, atol=1e-12)
    curve = CurveToy(speed_variation=0.9, fold=0.1)
    np.testing.assert_allclose(curve.measure(curve.gamma(c)[:, None, :]), c, atol=1e-12)
    t = np.arange(32)
    omega = np.linspace(0.3, 1.2, 101)
    sine = 0.7 * np.sin(omega[:, None] * t + 0.4)[:, :, None]
    np.testing.assert_allclose(Sinusoid().measure(sine), omega, atol=1e-10)
    gamma = np.linspace(0.02, 0.12, 101)
    damped = (1.3 * np.exp(-gamma[:, None] * t) * np.cos(0.8 * t + 2.0))[:, :, None]
    np.testing.assert_allclose(DampedOscillator().measure(damped), gamma, atol=1e-10)


# -- closed-form fits: failures are named, nothing is clipped ------------------------------
def test_sinusoid_without_real_frequency_fails_with_reason():
    t = np.arange(32)
    growing = np.exp(0.1 * t)[None, :, None]  # satisfies the recurrence with cos(omega) = cosh(0.1) > 1
    flat = np.zeros((1, 32, 1))
    recovery = Sinusoid().recover(np.concatenate([growing, flat]))
    assert recovery.reasons.tolist() == ["no real frequency (|cos omega| > 1)", "flat trajectory (no oscillation)"]


def test_damped_oscillator_failures_and_growth():
    t = np.arange(32)
    opposite_roots = (0.9**t + (-0.5) ** t)[None, :, None]  # a2 = 0.45 > 0
    single_exponential = (0.9**t)[None, :, None]  # x_t proportional to x_{t-1}: singular fit
    growing = (np.exp(0.01 * t) * np.cos(0.8 * t))[None, :, None]
    recovery = DampedOscillator().recover(np.concatenate([opposite_roots, single_exponential, growing]))
    assert recovery.reasons[0] == "not a damped oscillation (a2 >= 0)"
    assert recovery.reasons[1] == "degenerate fit"
    assert recovery.reasons[2] == "" and recovery.values[2] == pytest.approx(-0.01, abs=1e-10)


def test_observation_noise_is_seeded_and_scaled():
    task = InverseMap1D(noise=0.01, length=50)
    x, c = task.sample(200, rng=5)
    np.testing.assert_array_equal(x, task.sample(200, rng=5)[0])
    residual = x[:, :, 0] - task.g(c)[:, None]
    assert residual.std() == pytest.approx(0.01, rel=0.05)


# -- malapportionment with no neural network (Chapter 2) ---------------------------------
def test_noise_moves_mass_out_of_the_ill_conditioned_region():
    task = InverseMap1D(slope_variation=0.8)  # slow (g' = 0.2) in the middle of [0, 1]
    rng = np.random.default_rng(0)
    x, _ = task.sample(40000, rng)
    recovered = task.measure(x + 0.05 * rng.standard_normal(x.shape))
    middle = np.mean((recovered > 0.4) & (recovered < 0.6))
    # The prior puts 0.2 there; sampling error is sqrt(0.2 * 0.8 / 40000) = 0.002.
    assert middle < 0.2 - 0.02
    assert np.mean((recovered < 0) | (recovered > 1)) > 0.01  # and some leaves the support


def test_a_tight_fold_moves_controls_across_windings():
    rng = np.random.default_rng(1)
    jumps = {}
    for fold in (0.15, 0.6):
        task = CurveToy(fold=fold)
        x, c = task.sample(20000, rng)
        recovered = task.measure(x + 0.05 * rng.standard_normal(x.shape))
        jumps[fold] = np.nanmean(np.abs(recovered - c) > 0.3)
    assert jumps[0.15] > 0.02 and jumps[0.6] == 0.0


# -- chaoticity of the logistic map (Chapter 4) -----------------------------------------
def test_lyapunov_exponent_values():
    # r = 4 is conjugate to the tent map: lambda = ln 2 exactly.
    assert lyapunov_exponent(4.0, n_steps=20_000)[0] == pytest.approx(np.log(2), abs=2e-3)
    # r = 3.2: the 2-cycle's multiplier is -r^2 + 2r + 4, so lambda = ln|-r^2 + 2r + 4| / 2.
    r = 3.2
    assert lyapunov_exponent(r)[0] == pytest.approx(0.5 * np.log(abs(-r * r + 2 * r + 4)), abs=1e-9)


def test_lyapunov_exponent_sign_and_ranges():
    assert lyapunov_exponent(3.9)[0] > 0.3
    assert lyapunov_exponent(3.2)[0] < -0.1
    chaotic = lyapunov_exponent(np.linspace(3.6, 4.0, 41)).mean()
    periodic = lyapunov_exponent(np.linspace(2.8, 3.4, 41)).mean()
    assert chaotic > 0 > periodic
    with pytest.raises(ValueError):
        lyapunov_exponent([4.5])
