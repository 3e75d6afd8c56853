"""Data deviation kernels: noise statistics, predictions against the null, calibration, agreement."""

import inspect

import numpy as np
import pytest

from physmis_edu import kernels as k
from physmis_edu import metrics as m
from physmis_edu.tasks import LogisticMap


def predicted_tv(task, kernel, n=20_000, seed=0):
    x, _ = task.sample(n, rng=seed)
    values = k.predict_recovered(task, kernel, x, rng=seed + 1)
    return m.total_variation(m.prior_probs(task.prior), m.recovered_histogram(values, task.lo, task.hi).probs)


def test_zero_scale_kernel_predicts_the_prior_within_the_null():
    task = LogisticMap()
    x, _ = task.sample(5000, rng=0)
    null99 = m.null_quantile(task.prior, 5000, rng=1)
    for kernel in (k.Gaussian(0.0), k.Smooth(0.0, ell=3.0)):
        perturbed = kernel.perturb(x, rng=2)
        assert perturbed.dtype == np.float32 and perturbed.shape == x.shape
        assert np.array_equal(perturbed, x)
        report = m.drift_report(k.predict_recovered(task, kernel, x, rng=2), task.prior, rng=3)
        assert not report.significant and report.tv < null99


def test_gaussian_on_logistic_drifts_above_null_and_more_when_chaotic():
    chaotic, periodic = LogisticMap(3.6, 4.0), LogisticMap(2.6, 3.0)  # same width; lambda > 0 vs < 0
    null99 = m.null_quantile(chaotic.prior, 20_000, rng=0)
    kernel = k.Gaussian(0.01)
    tv_chaotic, tv_periodic = predicted_tv(chaotic, kernel), predicted_tv(periodic, kernel)
    assert tv_chaotic > 2.5 * null99
    # Measured: about 0.051 vs 0.036 (null99 about 0.017). The periodic range drifts too: the
    # transient from x_0 in [0.1, 0.9] and the least-squares fit's errors-in-variables carry the
    # noise into r; chaos adds the orbit's visits near 0 and 1, where f = x(1-x) is small.
    assert tv_chaotic > 1.2 * tv_periodic
    # A wider periodic range (more bins' worth of room) with the same kernel drifts even less.
    assert tv_chaotic > 1.4 * predicted_tv(LogisticMap(2.8, 3.4), kernel)


def test_smooth_noise_has_requested_std_and_correlation_length():
    sigma, ell = 0.3, 4.0
    noise = k.Smooth(sigma, ell).perturb(np.zeros((20_000, 32, 2)), rng=0).astype(np.float64)
    assert np.allclose(noise.std(axis=(0, 2)), sigma, rtol=0.03)
    for lag in (1, 2, 4, 8):
        corr = np.mean(noise[:, :-lag] * noise[:, lag:]) / sigma**2
        assert abs(corr - np.exp(-0.5 * (lag / ell) ** 2)) < 0.02, lag
    across_channels = np.mean(noise[..., 0] * noise[..., 1]) / sigma**2
    assert abs(across_channels) < 0.02
    white = k.Gaussian(sigma).perturb(np.zeros((20_000, 32, 1)), rng=1)
    assert abs(np.mean(white[:, :-1] * white[:, 1:]) / sigma**2) < 0.02
    assert np.isclose(white.std(), sigma, rtol=0.02)


def test_empirical_from_identical_samples_has_zero_residual():
    train, _ = LogisticMap().sample(300, rng=0)
    kernel = k.Empirical.from_samples(train, train.copy())
    assert np.all(kernel.residuals == 0)
    assert np.array_equal(kernel.perturb(train, rng=1), train)


def test_empirical_reproduces_a_known_residual():
    train, _ = LogisticMap().sample(300, rng=0)
    bump = np.zeros(train.shape[1:], dtype=np.float32)
    bump[5, 0] = 1e-3
    kernel = k.Empirical.from_samples(train, train[:50] + bump, max_samples=20, rng=2)
    assert kernel.residuals.shape == (20, 32, 1)
    assert np.allclose(kernel.residuals, bump, atol=1e-6)
    assert np.allclose(kernel.perturb(train[:10], rng=3) - train[:10], bump, atol=1e-6)


def test_nearest_neighbours_match_brute_force():
    rng = np.random.default_rng(0)
    ref, query = rng.random((400, 16, 2)), rng.random((150, 16, 2))
    dist, idx = k.nearest_neighbours(query, ref, chunk_elements=5000)  # several chunks
    brute = np.sqrt(((query.reshape(150, 1, -1) - ref.reshape(1, 400, -1)) ** 2).sum(-1))
    assert np.array_equal(idx, brute.argmin(axis=1))
    assert np.allclose(dist, brute.min(axis=1))
    assert np.allclose(k.nn_distances(ref[:7], ref), 0.0)


def test_nearest_neighbour_is_the_first_of_the_k_nearest():
    """One search: nearest_neighbours is k_nearest's first column (own copy allowed), with the
    distance recomputed in float64, whatever the chunking."""
    rng = np.random.default_rng(1)
    ref, query = rng.random((300, 12, 2)), rng.random((90, 12, 2))
    dist, idx = k.nearest_neighbours(query, ref, chunk_elements=3000)
    first = k.k_nearest(query, ref, 3, exclude_exact=False, chunk_elements=10 ** 7)[:, 0]
    assert np.array_equal(idx, first)
    assert np.array_equal(dist, np.sqrt(((query - ref[idx]) ** 2).sum(axis=(1, 2))))


@pytest.mark.parametrize("make", [k.Gaussian, lambda s: k.Smooth(s, ell=3.0)])
def test_calibration_recovers_a_known_scale_without_controls(make):
    assert "c" not in inspect.signature(k.calibrate).parameters
    task = LogisticMap()
    rng = np.random.default_rng(0)
    train, _ = task.sample(1500, rng)
    sigma0 = 0.02
    samples = make(sigma0).perturb(train[rng.choice(1500, 400, replace=False)], rng)
    cal = k.calibrate(make, train, samples, rng=1, n_perturb=400)
    assert abs(cal.scale - sigma0) < 0.1 * sigma0, cal
    assert not cal.at_edge and "calibrated" in str(cal)


def test_one_calibration_entry_point_two_statistics():
    """Both statistics through calibrate: a grid of scales (positional factory) or a dict grid
    (keyword factory), one result type whose medians are those of the statistic it matched."""
    task = LogisticMap()
    rng = np.random.default_rng(0)
    train, _ = task.sample(1500, rng)
    samples = k.Gaussian(0.02).perturb(train[:400], rng)
    by_scale = k.calibrate(k.Gaussian, train, samples, grid=[0.005, 0.01, 0.02, 0.04, 0.08],
                           rng=1, n_perturb=400, refine=False)
    by_grid = k.calibrate(k.Gaussian, train, samples, grid={"sigma": [0.005, 0.01, 0.02, 0.04]},
                          rng=1, n_perturb=400)
    assert by_scale.statistic == "distances" and by_scale.params == {"scale": 0.02}
    assert by_grid.statistic == "quantiles" and by_grid.params == {"sigma": 0.02}
    assert [p for p, _ in by_grid.losses][0] == k.Gaussian.IDENTITY  # identity tried first
    with pytest.raises(AttributeError, match="params"):
        by_grid.scale
    # the reported medians are the statistic's: the samples' own, and the kernel's at params
    assert by_scale.target_median == pytest.approx(np.median(k.nn_distances(samples, train)))
    assert by_grid.target_median == pytest.approx(np.median(k.nn_distances(samples, train)),
                                                  rel=1e-9)
    assert by_grid.fitted_median == pytest.approx(by_scale.fitted_median, rel=0.05)
    distances_on_grid = k.calibrate(k.Gaussian, train, samples, grid={"sigma": [0.01, 0.02]},
                                    statistic="distances", rng=1, n_perturb=400,
                                    include_identity=False)
    assert distances_on_grid.params == {"sigma": 0.02} and len(distances_on_grid.losses) == 2


def test_agreement_scores():
    task = LogisticMap()
    x, _ = task.sample(20_000, rng=0)
    predicted = k.predict_recovered(task, k.Gaussian(0.01), x, rng=1)
    observed = k.predict_recovered(task, k.Gaussian(0.01), x, rng=2)  # a "model" that errs the same way
    agree = k.agreement(task.prior, predicted, observed)
    assert agree.pearson > 0.9 and agree.spearman > 0.8 and agree.sign_agree
    assert agree.explained_fraction > 0.5
    perfect = k.agreement(task.prior, observed, observed)
    assert np.isclose(perfect.explained_fraction, 1.0) and np.isclose(perfect.pearson, 1.0)
    flipped = k.agreement(task.prior, 2 * task.prior.sample(5000, 3).mean() - predicted, observed)
    assert flipped.pearson < agree.pearson
    text = str(agree)
    assert "Pearson" in text and "explained fraction" in text


@pytest.mark.parametrize("call", [
    lambda: k.Gaussian(-0.1),
    lambda: k.Gaussian(np.nan),
    lambda: k.Smooth(0.1, 0.0),
    lambda: k.Smooth(0.1, -2.0),
    lambda: k.Smooth(-0.1, 2.0),
    lambda: k.Gaussian(0.1).perturb(np.zeros((4, 8)), rng=0),
    lambda: k.Gaussian(0.1).perturb(np.full((2, 8, 1), np.nan), rng=0),
    lambda: k.Smooth(0.1, 2.0).perturb(np.zeros((0, 8, 1)), rng=0),
    lambda: k.Empirical.from_samples(np.zeros((3, 8, 1)), np.zeros((3, 9, 1))),
    lambda: k.Empirical(np.zeros((3, 8, 1))).perturb(np.zeros((2, 7, 1)), rng=0),
    lambda: k.nn_distances(np.zeros((3, 8, 1)), np.zeros((0, 8, 1))),
    lambda: k.calibrate(k.Gaussian, np.zeros((3, 8, 1)), np.zeros((3, 8, 1)), grid=[-1.0, 1.0]),
    lambda: k.calibrate("gaussian", np.zeros((3, 8, 1)), np.zeros((3, 8, 1))),
    lambda: k.predict_recovered(LogisticMap(), "noise", np.zeros((3, 32, 1))),
    lambda: k.agreement(LogisticMap().prior, [np.nan], [3.7]),
])
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()


def _tilted(a, n, seed):
    """``n`` draws of the density ``1 + a (c - 1/2)`` on [0, 1]."""
    grid = np.linspace(0.0, 1.0, 4001)
    return np.interp(np.random.default_rng(seed).random(n), grid + a * (grid ** 2 - grid) / 2, grid)


@pytest.mark.parametrize("a, tol", [(0.6, 0.1), (1.5, 0.04)])
def test_ef_ceiling_matches_an_exact_prediction(a, tol):
    """A prediction exact in expectation scores well below 1; ef_ceiling says how far below."""
    from physmis_edu.tasks import Prior

    uniform = Prior(0.0, 1.0)
    efs = [k.agreement(uniform, _tilted(a, 2000, 2 * s), _tilted(a, 2000, 2 * s + 1),
                       ceiling=False).explained_fraction for s in range(150)]
    median, lo, hi = k.ef_ceiling(uniform, _tilted(a, 2000, 999), 2000)
    assert lo < median < hi < 1.0
    assert abs(median - np.median(efs)) < tol
    assert np.median(efs) < 0.8  # "1 is perfect" is not reachable at these sample sizes
    agree = k.agreement(uniform, _tilted(a, 2000, 0), _tilted(a, 2000, 1))
    assert agree.ef_ceiling is not None and "exact prediction" in str(agree)


def test_agreement_counts_failures_as_a_bin():
    from physmis_edu.tasks import Prior

    uniform = Prior(0.0, 1.0)
    predicted = _tilted(1.5, 4000, 0)
    observed = _tilted(1.5, 4000, 1)
    observed[:3000] = np.nan  # 75% of the model's recoveries fail; the kernel predicts none
    agree = k.agreement(uniform, predicted, observed)
    assert agree.failed_fraction_observed == 0.75 and agree.failed_fraction_predicted == 0.0
    assert agree.explained_fraction > 0.3  # the finite values alone agree
    assert agree.explained_fraction_failures < 0.2  # counting failures, the kernel missed most mass
    assert "75.0%" in str(agree)
    clean = k.agreement(uniform, predicted, _tilted(1.5, 4000, 1))
    assert clean.explained_fraction_failures == pytest.approx(clean.explained_fraction)
