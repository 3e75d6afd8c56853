"""Kernel families of Chapter 6: interface, limits that reduce to the identity, c-free residuals."""

import inspect

import numpy as np
import pytest

from physmis_edu.kernels import (Compounding, DenoisedNoise, Gaussian, NeighbourBlend, ProjectedNoise,
                                 ProxySamples, Quantise, Shrinkage, Truncation, calibrate,
                                 k_nearest, rule_residual)
from physmis_edu.tasks import CurveToy, DampedOscillator, LogisticMap, Sinusoid


@pytest.fixture(scope="module")
def train():
    x, _ = LogisticMap(length=16).sample(300, rng=0)
    return x


ALL = [lambda: NeighbourBlend(k=4, mix=0.5, sigma=0.01), lambda: Truncation(k=3, sigma=0.01),
       lambda: Shrinkage(tau=0.01, sigma=0.01), lambda: Quantise(bins=32, jitter=1.0),
       lambda: Compounding(sigma=0.01, rho=0.9), lambda: ProjectedNoise(sigma=0.1, pull=0.8, k=4),
       lambda: DenoisedNoise(sigma=0.1, pull=0.9, k=4, bandwidth=2.0)]


@pytest.mark.parametrize("make", ALL)
def test_interface(make, train):
    kernel = make()
    with pytest.raises(ValueError, match="fit"):
        kernel.perturb(train[:5], 0)
    assert kernel.fit(train) is kernel
    out = kernel.perturb(train[:50], np.random.default_rng(1))
    assert out.shape == (50, 16, 1) and out.dtype == np.float32
    np.testing.assert_array_equal(out, kernel.perturb(train[:50], np.random.default_rng(1)))
    assert 0 < np.abs(out - train[:50]).mean() < 0.5
    with pytest.raises(ValueError):
        kernel.perturb(train[:5, :8], 0)  # wrong length
    assert repr(kernel).startswith(type(kernel).__name__)


def test_bad_parameters_raise():
    for bad in (lambda: NeighbourBlend(k=0), lambda: NeighbourBlend(mix=1.5), lambda: Truncation(k=0),
                lambda: Shrinkage(tau=-1), lambda: Quantise(bins=1), lambda: Compounding(rho=2),
                lambda: Quantise(bins=None, jitter=0.5), lambda: ProjectedNoise(pull=1.5),
                lambda: ProjectedNoise(k=0), lambda: ProjectedNoise(sigma=-0.1),
                lambda: DenoisedNoise(pull=-0.1), lambda: DenoisedNoise(k=0),
                lambda: DenoisedNoise(bandwidth=0.0), lambda: DenoisedNoise(bandwidth=float("nan"))):
        with pytest.raises(ValueError):
            bad()


def test_identity_limits(train):
    x = train[:40]
    np.testing.assert_allclose(NeighbourBlend(mix=0.0).fit(train).perturb(x, 0), x, atol=1e-6)
    np.testing.assert_allclose(Truncation(k=16).fit(train).perturb(x, 0), x, atol=1e-5)
    np.testing.assert_allclose(Shrinkage(tau=0.0).fit(train).perturb(x, 0), x, atol=1e-5)
    q = Quantise(bins=64).fit(train)
    half_bin = 0.5 * (q.hi_ - q.lo_) / 64
    assert np.abs(q.perturb(x, 0) - x).max() <= half_bin + 1e-6


FAMILIES = [NeighbourBlend, Truncation, Shrinkage, Quantise, Compounding, ProjectedNoise,
            DenoisedNoise]


@pytest.mark.parametrize("family", FAMILIES)
def test_identity_parameters_are_exactly_the_identity(family, train):
    x = train[:40]
    kernel = family(**family.IDENTITY).fit(train)
    out = kernel.perturb(x, np.random.default_rng(3))
    assert out.dtype == np.float32 and out is not x
    np.testing.assert_array_equal(out, x)
    # On another task's shape too (the toy has d = 2 and L = 8).
    toy, _ = CurveToy(length=8).sample(100, rng=1)
    np.testing.assert_array_equal(family(**family.IDENTITY).fit(toy).perturb(toy[:10], 0), toy[:10])


@pytest.mark.parametrize("family", FAMILIES)
def test_calibration_can_choose_the_identity(family, train):
    # Samples that are the training set itself: zero strength matches every statistic exactly, so
    # every family must choose it, even from a grid that does not list it.
    grids = {NeighbourBlend: {"k": [4], "mix": [0.3, 0.6], "sigma": [0.0]}, Truncation: {"k": [2, 4], "sigma": [0.0]},
             Shrinkage: {"tau": [0.01, 0.1], "sigma": [0.0]}, Quantise: {"bins": [16, 64], "jitter": [0.0]},
             Compounding: {"sigma": [0.01, 0.1], "rho": [0.5]},
             ProjectedNoise: {"sigma": [0.05, 0.2], "pull": [0.8]},
             DenoisedNoise: {"sigma": [0.05, 0.2], "pull": [0.9], "bandwidth": [2.0]}}
    fit = calibrate(family, train, train, grid=grids[family], residual=rule_residual(NoRecovery(length=16)), rng=0)
    assert fit.params == family.IDENTITY and fit.loss == pytest.approx(0.0, abs=1e-12)
    assert len(fit.losses) == 3 and fit.losses[0][0] == family.IDENTITY
    without = calibrate(family, train, train, grid=grids[family], rng=0, include_identity=False)
    assert len(without.losses) == 2 and without.params != family.IDENTITY


def test_blend_stays_between_neighbours(train):
    blend = NeighbourBlend(k=4, mix=1.0).fit(train)
    x = train[:30]
    idx = blend.neighbours(x)
    assert not (idx == np.arange(30)[:, None]).any()  # itself excluded
    out = blend.perturb(x, 0)
    lo = np.minimum(x, train[idx].min(axis=1))
    hi = np.maximum(x, train[idx].max(axis=1))
    assert ((out >= lo - 1e-6) & (out <= hi + 1e-6)).all()


def test_compounding_grows_along_time(train):
    x = np.repeat(train[:1], 4000, axis=0)
    walk = Compounding(sigma=0.05, rho=1.0).fit(train).perturb(x, 0) - x
    white = Compounding(sigma=0.05, rho=0.0).fit(train).perturb(x, 0) - x
    assert walk[:, -1].std() > 3 * walk[:, 0].std()
    assert white[:, -1].std() == pytest.approx(white[:, 0].std(), rel=0.1)


class NoRecovery(LogisticMap):
    """A task whose recovery raises: c-free statistics must never need it."""

    def recover(self, x):
        raise AssertionError("the recovery was called during calibration")


@pytest.mark.parametrize("task", [NoRecovery(), Sinusoid(), DampedOscillator(), CurveToy(length=4)])
def test_rule_residual_is_zero_on_true_data_without_recovery(task):
    x, _ = task.sample(200, rng=3)
    residual = rule_residual(task)
    clean = residual(x)
    noisy = residual(x + 0.05 * np.random.default_rng(0).standard_normal(x.shape).astype(np.float32))
    assert clean.shape == (200,)
    assert np.median(clean) < 1e-3 and np.median(noisy) > 10 * max(np.median(clean), 1e-5)
    assert list(inspect.signature(residual).parameters) == ["x"]


def test_calibrate_by_quantiles_finds_the_scale(train):
    samples = Compounding(sigma=0.1, rho=0.0).fit(train).perturb(train, np.random.default_rng(5))
    task = NoRecovery(length=16)
    fit = calibrate(Compounding, train, samples, grid={"sigma": [0.01, 0.1, 1.0], "rho": [0.0]},
                    residual=rule_residual(task), rng=0, n_perturb=500)
    assert fit.statistic == "quantiles"
    assert fit.params == {"sigma": 0.1, "rho": 0.0}
    assert len(fit.losses) == 4  # the three grid points and the identity (sigma = 0)
    assert list(inspect.signature(calibrate).parameters)[:4] == ["factory", "train", "samples", "grid"]


def test_proxy_samples_draws_the_proxy_in_place_of_the_data(train):
    proxy = (train[:100] + 0.5).astype(np.float32)  # marked, so a drawn row is recognisably the proxy's
    kernel = ProxySamples(proxy)
    out = kernel.perturb(train[:60], np.random.default_rng(2))
    assert out.shape == (60, 16, 1) and out.dtype == np.float32
    np.testing.assert_array_equal(out, kernel.perturb(train[:60], np.random.default_rng(2)))
    rows = {r.tobytes() for r in proxy}
    assert all(r.tobytes() in rows for r in out)
    assert len({r.tobytes() for r in out}) == 60  # without replacement while the pool is large enough
    # As many rows as the pool: q_hat is exactly the proxy's own histogram (a permutation of it).
    full = kernel.perturb(train[:100], 0)
    np.testing.assert_array_equal(np.sort(full[:, 0, 0]), np.sort(proxy[:, 0, 0]))
    assert kernel.perturb(train[:250], 0).shape == (250, 16, 1)  # more rows than the pool: with replacement
    with pytest.raises(ValueError):
        kernel.perturb(train[:5, :8], 0)  # wrong length
    with pytest.raises(ValueError):
        ProxySamples(proxy[:, :, 0])  # not (n, L, d)
    assert repr(kernel) == "ProxySamples(n_samples=100)"


def test_proxy_samples_shrunk_toward_the_prior(train):
    """lambda = 0 predicts the curated data's own histogram (the prior, within the null); lambda = 1 is the unshrunk proxy."""
    from physmis_edu.metrics import null_quantile, prior_probs, recovered_histogram, total_variation

    task = LogisticMap(length=16)
    proxy = task.sample(300, rng=7)[0] * np.float32(0.97)  # a "proxy" that drifts: a contracted trajectory
    bins, prior = 20, task.prior

    def hist(values):
        return recovered_histogram(values, task.lo, task.hi, bins).probs

    q_train = hist(task.measure(ProxySamples(proxy, mix=0.0).perturb(train, np.random.default_rng(3))))
    np.testing.assert_array_equal(ProxySamples(proxy, mix=0.0).perturb(train, 3), train)  # the identity
    assert total_variation(prior_probs(prior, bins), q_train) <= null_quantile(prior, train.shape[0], bins=bins, q=0.99,
                                                                                  rng=np.random.default_rng(0))
    # lambda = 1: the same rows, from the same stream, as the unshrunk kernel (the existing proxy row).
    np.testing.assert_array_equal(ProxySamples(proxy, mix=1.0).perturb(train, np.random.default_rng(4)),
                                  ProxySamples(proxy).perturb(train, np.random.default_rng(4)))
    q_proxy = hist(task.measure(proxy))
    np.testing.assert_allclose(hist(task.measure(ProxySamples(proxy, mix=1.0).perturb(train, 4))), q_proxy)
    # In between: exactly round(lambda * n) proxy rows, so q_hat is the lambda-mixture of the two histograms.
    half = ProxySamples(proxy, mix=0.5).perturb(train, np.random.default_rng(5))
    from_proxy = ~np.all(half == train, axis=(1, 2))
    assert from_proxy.sum() == 150
    q_half = hist(task.measure(half))
    assert total_variation(q_half, 0.5 * q_train + 0.5 * q_proxy) < 0.5 * total_variation(q_train, q_proxy)
    assert repr(ProxySamples(proxy, mix=0.5)) == "ProxySamples(n_samples=300, mix=0.5)"
    with pytest.raises(ValueError, match="mix"):
        ProxySamples(proxy, mix=1.5)


def test_applied_residuals_need_no_recovery():
    from physmis_edu.tasks import DoublePendulum, MazeTask

    class PendulumNoRecovery(DoublePendulum):
        def recover(self, x):
            raise AssertionError("the recovery was called")

    pend = PendulumNoRecovery(length=16)
    x, _ = pend.sample(100, rng=3)
    residual = rule_residual(pend)
    noisy = x + 0.02 * np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    assert np.max(residual(x)) < 1e-5 and np.median(residual(noisy)) > 1e-3
    assert rule_residual(DoublePendulum(representation="angles", length=16)) is None
    # The maze's roughness: not zero on true paths, but fresh true paths match the training paths'
    # distribution, and white noise roughens them.
    maze = MazeTask(maze="umaze", length=32)
    train, _ = maze.sample(400, rng=1)
    fresh, _ = maze.sample(400, rng=2)
    rough = rule_residual(maze)
    assert abs(np.median(rough(fresh)) / np.median(rough(train)) - 1) < 0.1
    assert np.median(rough(train + 0.05 * np.random.default_rng(0).standard_normal(train.shape))) > 2 * np.median(rough(train))



def test_projected_noise_pulls_white_noise_back_towards_the_data(train):
    """The pull keeps the error near the training data: perturbed trajectories sit closer to
    their nearest training neighbour than white noise of the same sigma leaves them, and
    pull = 0 is that white noise (in training standard deviations)."""
    from physmis_edu.kernels import nn_distances

    x = train[:200]
    std = float(train.std())
    white = ProjectedNoise(sigma=0.3, pull=0.0, k=4).fit(train).perturb(x, np.random.default_rng(5))
    np.testing.assert_allclose(white, Gaussian(0.3 * std).perturb(x, np.random.default_rng(5)),
                               rtol=1e-5, atol=1e-6)
    pulled = ProjectedNoise(sigma=0.3, pull=0.8, k=4).fit(train).perturb(x, np.random.default_rng(5))
    # 300 training trajectories are sparse, so the neighbours' mean is itself far from each of
    # them; the pull still brings the perturbed points measurably nearer the data (0.76x here).
    assert np.median(nn_distances(pulled, train)) < 0.9 * np.median(nn_distances(white, train))
    # The pull is a step of size `pull` from z to its neighbours' mean.
    kernel = ProjectedNoise(sigma=0.3, pull=0.8, k=4).fit(train)
    idx = k_nearest(white, train, 4, exclude_exact=False)
    np.testing.assert_allclose(pulled, white + 0.8 * (train[idx].mean(axis=1) - white),
                               rtol=1e-5, atol=1e-6)
    assert kernel.params() == {"sigma": 0.3, "pull": 0.8, "k": 4}
    with pytest.raises(ValueError, match="at least k"):
        ProjectedNoise(k=8).fit(train[:5])


def test_denoised_noise_tends_to_the_identity_as_sigma_shrinks(train):
    """On training trajectories the ideal denoiser's weights concentrate on the source as sigma
    shrinks, so the kernel's error vanishes with sigma; ProjectedNoise's pull towards the plain
    mean of the neighbours does not."""
    x = train[:200]
    errors = []
    for sigma in (0.3, 0.03, 0.003):
        out = DenoisedNoise(sigma=sigma, pull=1.0, k=8, bandwidth=2.0).fit(train).perturb(
            x, np.random.default_rng(4))
        errors.append(np.abs(out - x).mean())
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-3 * np.abs(x).mean()
    projected = ProjectedNoise(sigma=0.003, pull=1.0, k=8).fit(train).perturb(
        x, np.random.default_rng(4))
    assert np.abs(projected - x).mean() > 100 * errors[2]


def test_denoised_noise_is_the_weighted_neighbour_average(train):
    """D(z) weights the k nearest training trajectories by a Gaussian of width bandwidth * sigma
    (training stds); a very wide one gives their plain mean, i.e. ProjectedNoise."""
    x = train[:100]
    std = float(train.std())
    kernel = DenoisedNoise(sigma=0.2, pull=0.7, k=4, bandwidth=1.5).fit(train)
    z = Gaussian(0.2 * std).perturb(x, np.random.default_rng(6))
    idx = k_nearest(z, train, 4, exclude_exact=False)
    d2 = ((train[idx] - z[:, None]) ** 2).sum(axis=(2, 3)) / std ** 2
    w = np.exp(-(d2 - d2.min(axis=1, keepdims=True)) / (2 * (1.5 * 0.2) ** 2))
    w /= w.sum(axis=1, keepdims=True)
    expected = z + 0.7 * (np.einsum("nk,nkld->nld", w, train[idx]) - z)
    np.testing.assert_allclose(kernel.perturb(x, np.random.default_rng(6)), expected,
                               rtol=1e-4, atol=1e-5)
    wide = DenoisedNoise(sigma=0.2, pull=0.7, k=4, bandwidth=1e4).fit(train)
    np.testing.assert_allclose(wide.perturb(x, np.random.default_rng(6)),
                               ProjectedNoise(sigma=0.2, pull=0.7, k=4).fit(train).perturb(
                                   x, np.random.default_rng(6)), rtol=1e-4, atol=1e-5)
    assert kernel.params() == {"sigma": 0.2, "pull": 0.7, "k": 4, "bandwidth": 1.5}
    with pytest.raises(ValueError, match="at least k"):
        DenoisedNoise(k=8).fit(train[:5])
    with pytest.raises(ValueError, match="sigma > 0"):
        DenoisedNoise(sigma=0.0).fit(train).denoise(x)
    with pytest.raises(ValueError, match="bandwidth"):
        DenoisedNoise(bandwidth=-1.0)


def test_denoised_noise_calibrated_by_statistics_passes_the_perfect_model_control():
    """Chapter 6's claim at a small scale: calibrated on fresh true trajectories of the chaotic
    logistic map (c-free statistics with the rule residual), DenoisedNoise chooses no error and
    predicts no drift beyond the null; calibrated on samples with a visible error, it chooses a
    nonzero sigma."""
    from physmis_edu.kernels import predict_recovered
    from physmis_edu.metrics import drift_report

    task = LogisticMap(length=16)
    train, _ = task.sample(1500, rng=0)
    fresh, _ = task.sample(1500, rng=1)
    grid = {"sigma": list(np.geomspace(0.01, 1.0, 7)), "pull": [0.9], "k": [4], "bandwidth": [2.0]}
    truth = calibrate(DenoisedNoise, train, fresh, grid=grid, residual=rule_residual(task), rng=2,
                      n_perturb=500)
    assert truth.params == DenoisedNoise.IDENTITY
    report = drift_report(predict_recovered(task, truth.kernel, train, rng=3), task.prior,
                          n_boot=20, rng=4)
    assert not report.significant
    noisy = fresh + np.float32(0.03) * np.random.default_rng(5).standard_normal(
        fresh.shape).astype(np.float32)
    flawed = calibrate(DenoisedNoise, train, noisy, grid=grid, residual=rule_residual(task),
                       rng=2, n_perturb=500)
    assert flawed.params["sigma"] > 0
