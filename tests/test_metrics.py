"""Metrics: identities, the finite-sample null's false-alarm rate, reports, bad input."""

import numpy as np
import pytest

from physmis_edu import metrics as m
from physmis_edu.tasks import Prior

UNIFORM = Prior(0.0, 1.0)
RAMP = Prior(0.0, 1.0, density=lambda c: 0.2 + c)


def test_histogram_counts_overflow_and_failures():
    values = np.array([-0.5, 0.0, 0.05, 0.5, 1.0, 1.5, 2.0, np.nan, np.nan])
    h = m.recovered_histogram(values, 0.0, 1.0, bins=10)
    assert h.counts.shape == (12,)
    assert (h.counts[0], h.counts[-1]) == (1, 2)  # -0.5 below; 1.5 and 2.0 above; 1.0 is inside
    assert h.counts[1] == 2 and h.counts[10] == 1  # 0.0, 0.05 in the first bin; hi in the last
    assert h.n_failed == 2 and h.n_total == 9 and h.counts.sum() == 7
    assert np.isclose(h.probs.sum(), 1.0)
    assert np.isclose(h.out_of_support, 3 / 7)


def test_prior_probs_sum_to_one_with_empty_overflow():
    for prior in (UNIFORM, RAMP):
        p = m.prior_probs(prior, 8)
        assert p.shape == (10,) and p[0] == 0 and p[-1] == 0 and np.isclose(p.sum(), 1.0)
    assert np.allclose(m.prior_probs(UNIFORM, 4)[1:-1], 0.25)
    ramp = m.prior_probs(RAMP, 4)[1:-1]
    assert np.all(np.diff(ramp) > 0)


def test_distance_identities():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p, q = rng.dirichlet(np.ones(12)), rng.dirichlet(np.ones(12))
        assert m.total_variation(p, p) == 0.0
        assert 0.0 <= m.total_variation(p, q) <= 1.0
        assert np.isclose(m.total_variation(p, q), m.total_variation(q, p))
        assert np.isclose(m.jensen_shannon(p, q), m.jensen_shannon(q, p))
        assert 0.0 <= m.jensen_shannon(p, q) <= 1.0
        assert np.allclose(m.shift(p, q), q - p)
    disjoint_p, disjoint_q = np.array([1.0, 0, 0]), np.array([0, 0, 1.0])
    assert m.total_variation(disjoint_p, disjoint_q) == 1.0
    assert np.isclose(m.jensen_shannon(disjoint_p, disjoint_q), 1.0)
    a = rng.normal(size=500)
    assert np.isclose(m.wasserstein1(a, a + 0.3), 0.3)
    assert np.isclose(m.wasserstein1(np.append(a, np.nan), a + 0.3), 0.3)  # NaN = failure, not data


def test_wasserstein_to_prior_matches_large_sample():
    rng = np.random.default_rng(1)
    values = rng.normal(0.6, 0.1, 4000)
    exact = m.wasserstein_to_prior(values, RAMP)
    sampled = m.wasserstein1(values, RAMP.sample(400_000, rng))
    assert abs(exact - sampled) < 0.005
    assert m.wasserstein_to_prior(UNIFORM.sample(20_000, rng), UNIFORM) < 0.01
    assert np.isclose(m.prior_mean(UNIFORM), 0.5)
    assert np.isclose(m.prior_mean(RAMP), (0.1 + 1 / 3) / 0.7, atol=1e-6)


def test_null_false_alarm_rate_is_about_one_percent():
    # True prior samples must exceed the null's 99th percentile about 1% of the time.
    rng = np.random.default_rng(2)
    n, reps, bins = 1000, 2000, 20
    for prior in (UNIFORM, RAMP):
        null99 = m.null_quantile(prior, n, bins, n_rep=4000, rng=rng)
        p = m.prior_probs(prior, bins)
        draws = prior.sample(n * reps, rng).reshape(reps, n)
        tvs = np.array([m.total_variation(p, m.recovered_histogram(d, 0.0, 1.0, bins).probs) for d in draws])
        alarms = int((tvs > null99).sum())
        # Binomial(2000, 0.01) has mean 20, sd 4.5; the wide band also absorbs the null's own noise
        # and the discreteness of TV (multiples of 1/(2n)).
        assert 6 <= alarms <= 40, (prior, alarms)


def test_null_band_and_tv_shrink_with_n():
    rng = np.random.default_rng(3)
    assert m.null_quantile(UNIFORM, 10_000, rng=rng) < m.null_quantile(UNIFORM, 500, rng=rng) / 3
    lower, upper = m.null_band(UNIFORM, 2000, bins=10, rng=rng)
    p = m.prior_probs(UNIFORM, 10)
    assert np.all(lower[1:-1] < p[1:-1]) and np.all(upper[1:-1] > p[1:-1])
    assert lower[0] == upper[0] == 0


def test_bootstrap_ci_covers_the_mean():
    rng = np.random.default_rng(4)
    values = rng.normal(1.0, 1.0, 2000)
    lo, hi = m.bootstrap_ci(values, np.mean, n_boot=300, rng=rng)
    assert lo < 1.0 < hi and hi - lo < 0.2


def test_drift_report_detects_shift_and_not_truth(tmp_path):
    rng = np.random.default_rng(5)
    truth = m.drift_report(UNIFORM.sample(5000, rng), UNIFORM, rng=rng)
    assert not truth.significant and truth.tv <= truth.null_tv99
    shifted = np.append(UNIFORM.sample(5000, rng) * 0.9 + 0.15, [np.nan] * 7)  # 5% of mass beyond hi
    report = m.drift_report(shifted, UNIFORM, predicted=UNIFORM.sample(3000, rng), rng=rng)
    assert report.significant and report.n_failed == 7 and report.n == 5007
    assert 0.03 < report.out_of_support < 0.07
    assert report.tv_ci[0] <= report.tv <= report.tv_ci[1]
    assert report.w1_ci[0] < report.w1 < report.w1_ci[1]
    assert report.shift.shape == (22,) and report.shift[-1] > 0
    text = str(report)
    for word in ("n=5007", "failed=7", "TV", "null99", "W1", "JS", "out of support", "predicted", "verdict: drift"):
        assert word in text
    import matplotlib

    matplotlib.use("Agg")
    ax = report.plot()
    ax.figure.savefig(tmp_path / "drift.png")
    assert (tmp_path / "drift.png").stat().st_size > 0


def test_same_seed_same_report():
    values = np.random.default_rng(6).random(1000)
    a, b = m.drift_report(values, UNIFORM, rng=7), m.drift_report(values, UNIFORM, rng=7)
    assert (a.tv_ci, a.w1_ci, a.null_tv99) == (b.tv_ci, b.w1_ci, b.null_tv99)


@pytest.mark.parametrize("call", [
    lambda: m.recovered_histogram(np.empty(0), 0, 1),
    lambda: m.recovered_histogram(np.ones((3, 2)), 0, 1),
    lambda: m.recovered_histogram([0.5, np.inf], 0, 1),
    lambda: m.recovered_histogram([0.5], 1, 0),
    lambda: m.recovered_histogram([0.5], 0, 1, bins=0),
    lambda: m.total_variation([0.5, 0.5], [1.0, 0.0, 0.0]),
    lambda: m.total_variation([0.5, 0.6], [0.5, 0.5]),
    lambda: m.total_variation([1.5, -0.5], [0.5, 0.5]),
    lambda: m.jensen_shannon([np.nan, 1.0], [0.5, 0.5]),
    lambda: m.wasserstein1([np.nan], [1.0]),
    lambda: m.null_tv(UNIFORM, 0),
    lambda: m.null_quantile(UNIFORM, 10, q=1.5),
    lambda: m.drift_report([np.nan, np.nan], UNIFORM),
    lambda: m.drift_report([0.5], "uniform"),
])
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()
