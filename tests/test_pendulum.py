"""Double pendulum task (Chapter 6's applied panel): integrator, energy shell, recovery, chaos, kernel drift."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from physmis_edu import metrics
from physmis_edu.kernels import Gaussian, predict_recovered
from physmis_edu.tasks import DoublePendulum
from physmis_edu.tasks.pendulum import plot_energy_histogram, plot_strobe

N = 2000


@pytest.fixture(scope="module")
def pendulum():
    task = DoublePendulum()
    x, c = task.sample(N, rng=0)
    return task, x, c


def test_rk4_keeps_relative_energy_error_below_1e4_over_the_horizon():
    task = DoublePendulum()
    energy = np.linspace(task.lo, task.hi, 64)
    start = task.initial_states(energy, rng=1)
    # Every RK4 step over the whole stored horizon, across the prior.
    states = task.integrate(start, (task.length - 1) * task.stride + 1, stride=1)
    e = task.energy(states)
    rel = np.abs(e - energy[:, None]).max(axis=1) / energy
    assert rel.max() < 1e-4


def test_rk4_matches_dop853_at_tight_tolerance():
    task = DoublePendulum(length=32)
    start = task.initial_states([task.lo, 10.0, 25.0, task.hi], rng=2)
    rk4 = task.integrate(start, task.length)
    t = np.arange(task.length) * task.frame_dt
    for s0, ours in zip(start, rk4):
        ref = solve_ivp(lambda _, y: task.derivative(y), (0.0, t[-1]), s0, method="DOP853",
                        rtol=1e-12, atol=1e-12, t_eval=t)
        assert ref.success
        np.testing.assert_allclose(ours, ref.y.T, atol=1e-5, rtol=0)


def test_initial_states_lie_exactly_on_the_energy_shell():
    task = DoublePendulum(m1=0.7, m2=1.3, l1=1.2, l2=0.8, g=9.0)
    energy = task.prior.sample(500, rng=3)
    s0 = task.initial_states(energy, rng=3)
    np.testing.assert_allclose(task.energy(s0), energy, rtol=1e-12, atol=1e-12)
    assert (task.potential(s0[:, 0], s0[:, 1]) <= energy + 1e-12).all()
    # E = 0 is the pendulum at rest.
    np.testing.assert_allclose(task.initial_states([0.0], rng=0), 0.0, atol=1e-12)


def test_energy_recovered_exactly_from_angles_and_velocities(pendulum):
    task, x, c = pendulum
    assert x.dtype == np.float32 and x.shape == (N, 64, 6)
    rel = np.abs(task.measure(x) - c) / c
    assert rel.max() < 1e-5  # integration and float32 storage only


def test_energy_from_angles_alone_with_finite_differences():
    task = DoublePendulum(representation="angles")
    x, c = task.sample(500, rng=4)
    assert x.shape == (500, 64, 2) and np.abs(x).max() <= np.pi
    rel = np.abs(task.measure(x) - c) / c
    # Finite differences of frames 0.05 s apart: accurate on clean data, but not exact.
    assert np.median(rel) < 2e-3 and rel.max() < 2e-2


def test_chaos_indicator_grows_with_energy():
    task = DoublePendulum()
    lam = task.finite_time_lyapunov([1.0, 40.0], duration=8.0, n_initial=8, rng=5)
    assert lam[1] > lam[0] + 0.5 and lam[1] > 0.5


def test_gaussian_kernel_predicts_an_energy_shift_above_the_null(pendulum):
    task, x, c = pendulum
    null99 = metrics.null_quantile(task.prior, N, rng=6)
    q_hat = predict_recovered(task, Gaussian(0.5), x, rng=7)
    tv = metrics.total_variation(metrics.prior_probs(task.prior, 20),
                                 metrics.recovered_histogram(q_hat, task.lo, task.hi).probs)
    assert tv > 2 * null99
    lo, _ = metrics.bootstrap_ci(q_hat - c, np.mean, rng=8)
    assert lo > 0  # energy goes up: noise on velocities and angles adds energy on average


def test_velocity_noise_bias_matches_the_curvature_of_kinetic_energy(pendulum):
    task, x, c = pendulum
    sigma = 0.4
    noisy = x.copy()
    noisy[..., 4:] += sigma * np.random.default_rng(9).standard_normal(noisy[..., 4:].shape).astype(np.float32)
    # E[dT] = 0.5 tr(M S) = 0.5 sigma^2 ((m1 + m2) l1^2 + m2 l2^2): the cross term averages out.
    expected = 0.5 * sigma ** 2 * ((task.m1 + task.m2) * task.l1 ** 2 + task.m2 * task.l2 ** 2)
    shift = task.measure(noisy) - c
    assert abs(shift.mean() - expected) < 4 * shift.std() / np.sqrt(N)


def test_angles_variant_is_ill_conditioned():
    smooth = DoublePendulum()
    angles = DoublePendulum(representation="angles")
    xs, c = smooth.sample(500, rng=10)
    xa = angles.to_representation(smooth.simulate(c, rng=10))
    # The same small white noise moves the angles-only recovery far more.
    shift_s = np.mean(predict_recovered(smooth, Gaussian(0.02), xs, rng=11) - smooth.measure(xs))
    shift_a = np.mean(predict_recovered(angles, Gaussian(0.02), xa, rng=11) - angles.measure(xa))
    assert shift_a > 10 * abs(shift_s)


def test_same_seed_same_trajectories():
    task = DoublePendulum(length=16)
    np.testing.assert_array_equal(task.sample(50, rng=12)[0], task.sample(50, rng=12)[0])


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="minimum potential"):
        DoublePendulum(lo=-5.0, hi=10.0)
    with pytest.raises(ValueError, match="lo < hi"):
        DoublePendulum(lo=10.0, hi=10.0)
    with pytest.raises(ValueError, match="length"):
        DoublePendulum(length=1)
    with pytest.raises(ValueError, match="length"):
        DoublePendulum(length=4, representation="angles")
    with pytest.raises(ValueError, match="dt"):
        DoublePendulum(dt=0.01)
    with pytest.raises(ValueError, match="representation"):
        DoublePendulum(representation="cartesian")
    with pytest.raises(ValueError, match="m2"):
        DoublePendulum(m2=0.0)
    task = DoublePendulum()
    with pytest.raises(ValueError, match="c must lie"):
        task.generate([task.hi + 1.0])
    with pytest.raises(ValueError, match="energy"):
        task.initial_states([-1.0])
    with pytest.raises(ValueError, match="d=6"):
        task.measure(np.zeros((2, 64, 2)))


def test_recovery_reports_nan_trajectories(pendulum):
    task, x, _ = pendulum
    bad = x[:3].copy()
    bad[1, 10, 4] = np.nan
    rec = task.recover(bad)
    assert rec.failure_counts() == {"nan in trajectory": 1} and np.isfinite(rec.values[[0, 2]]).all()


def test_figures(pendulum):
    task, x, c = pendulum
    ax = plot_strobe(task, x, index=3, n_strobe=10)
    assert len(ax.lines) == 1 + 10 + 1  # trace, rods, pivot
    ax = plot_energy_histogram(task, {"data": c, "kernel": predict_recovered(task, Gaussian(0.3), x, rng=0)}, rng=0)
    assert ax.get_legend() is not None
    matplotlib.pyplot.close("all")


def test_angle_noise_amplification_is_the_stencils_root_sum_of_squares():
    """At rest, angle noise s adds 0.5 (a + d) (130 / 144) s^2 / dt^2 of kinetic and g (...) s^2 / 2 of potential energy."""
    task, s = DoublePendulum(), 1e-3
    angles = s * np.random.default_rng(0).standard_normal((4000, task.length, 2))
    e = task.recover_from_angles(angles).values
    a, d = (task.m1 + task.m2) * task.l1 ** 2, task.m2 * task.l2 ** 2
    predicted = (0.5 * (a + d) * 130 / 144 * s ** 2 / task.frame_dt ** 2
                 + task.g * ((task.m1 + task.m2) * task.l1 + task.m2 * task.l2) * s ** 2 / 2)
    assert e.mean() == pytest.approx(predicted, abs=4 * e.std() / np.sqrt(e.size))
