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


# -- bias-corrected intervals, failures in the verdict (issue 12, items 13, 15, 16) -------------

P20 = m.prior_probs(UNIFORM, 20)


def _tv_of(values):
    return 0.5 * np.abs(m.recovered_histogram(values, 0.0, 1.0, 20).probs - P20).sum()


def _tilted(a, n, seed):
    """``n`` draws of the density ``1 + a (c - 1/2)`` on [0, 1]; its exact TV to uniform on 20 bins."""
    grid = np.linspace(0.0, 1.0, 4001)
    values = np.interp(np.random.default_rng(seed).random(n), grid + a * (grid ** 2 - grid) / 2, grid)
    edges = np.linspace(0.0, 1.0, 21)
    q = np.concatenate([[0.0], np.diff(edges + a * (edges ** 2 - edges) / 2), [0.0]])
    return values, 0.5 * np.abs(q - P20).sum()


def test_bca_matches_scipy_on_a_skewed_statistic():
    from scipy import stats

    x = np.random.default_rng(1).exponential(1.0, 200)
    ours = m.bootstrap_ci(x, np.std, 4000, rng=2, method="BCa")
    ref = stats.bootstrap((x,), np.std, n_resamples=4000, method="BCa", random_state=3).confidence_interval
    percentile = m.bootstrap_ci(x, np.std, 4000, rng=2)
    assert abs(ours[0] - ref.low) < 0.03 and abs(ours[1] - ref.high) < 0.04
    assert ours[1] - percentile[1] > 0.1  # the skew correction is real, not a relabelled percentile


def test_bca_interval_never_excludes_its_estimate_near_zero_tv():
    excluded_percentile, undefined = 0, 0
    for seed in range(20):
        values = np.random.default_rng(seed).random(2000)  # true TV is 0
        lo, hi = m.bootstrap_ci(values, _tv_of, 200, rng=seed)
        excluded_percentile += not lo <= _tv_of(values) <= hi
        try:
            lo, hi = m.bootstrap_ci(values, _tv_of, 200, rng=seed, method="BCa")
        except m.UndefinedIntervalError:
            undefined += 1
            continue
        assert lo <= _tv_of(values) <= hi
    assert excluded_percentile >= 10  # the failure the BCa method exists to avoid
    assert undefined < 20


def test_bca_interval_covers_a_large_true_tv():
    hits = 0
    for seed in range(20):
        values, truth = _tilted(1.5, 2000, seed)
        lo, hi = m.bootstrap_ci(values, _tv_of, 200, rng=seed, method="BCa")
        hits += lo <= truth <= hi
    assert hits >= 16  # nominal 95%; 16 of 20 is the binomial 2% tail


def _finite_mean(v):
    return v[np.isfinite(v)].mean() if np.isfinite(v).any() else np.nan


def test_bootstrap_ci_refuses_nan_statistics():
    values = np.array([np.nan, np.nan, np.nan, 0.5])
    with pytest.raises(m.UndefinedIntervalError, match="resamples"):
        m.bootstrap_ci(values, _finite_mean, 200, rng=0)  # a resample of four NaN has no mean
    with pytest.raises(ValueError, match="nothing to bound"):
        m.bootstrap_ci([0.1, 0.2], lambda v: np.nan)
    with pytest.raises(ValueError, match="one number"):
        m.bootstrap_ci([0.1, 0.2], lambda v: v)
    with pytest.raises(ValueError, match="method"):
        m.bootstrap_ci([0.1, 0.2], np.mean, method="bca-ish")


def test_tv_with_failures():
    h = m.recovered_histogram(np.random.default_rng(0).random(500), 0, 1, 20)
    assert m.tv_with_failures(P20, h) == pytest.approx(m.total_variation(P20, h.probs), abs=1e-12)
    h = m.recovered_histogram([0.5] + [np.nan] * 9, 0, 1, 20)
    assert m.tv_with_failures(P20, h) == pytest.approx(0.5 * (np.abs(P20 - h.counts / 10).sum() + 0.9))
    assert m.tv_with_failures(P20, h) >= m.total_variation(P20, h.probs)


def test_failed_recoveries_count_against_the_verdict():
    rng = np.random.default_rng(3)
    values = UNIFORM.sample(4000, rng)
    values[:3000] = np.nan  # 75% failed; the rest is a perfect sample
    report = m.drift_report(values, UNIFORM, rng=4)
    assert report.tv <= report.null_tv99  # the finite values alone look fine
    assert report.tv_failed >= 0.375 and report.significant
    assert "failed" in report.verdict and "no drift" not in report.verdict
    clean = m.drift_report(values[3000:], UNIFORM, rng=4)
    assert clean.tv_failed == pytest.approx(clean.tv) and not clean.significant


def test_pearson_and_spearman():
    from scipy import stats

    a = np.array([0.1, -0.3, 0.2, 0.05, -0.4, 0.3])
    b = np.array([0.2, -0.1, 0.1, 0.0, -0.5, 0.6])
    assert m.pearson(a, b) == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-15)
    assert m.spearman(a, b) == pytest.approx(stats.spearmanr(a, b)[0], abs=1e-15)
    assert m.pearson(a, 2 * a + 1) == pytest.approx(1.0) and m.spearman(a, np.exp(a)) == pytest.approx(1.0)
    assert m.pearson(a, -a) == pytest.approx(-1.0)
    # A constant input has no correlation: NaN, not a warning and not 0.
    for f in (m.pearson, m.spearman):
        assert np.isnan(f(a, np.zeros(6))) and np.isnan(f(np.ones(6), b))
        with pytest.raises(ValueError, match="same length"):
            f(a, b[:5])
        with pytest.raises(ValueError, match="a must be 1-D"):
            f(a[:, None], b)
    assert isinstance(m.pearson(list(a), list(b)), float)


def test_as_prior_accepts_a_task_and_names_the_argument():
    from physmis_edu.tasks import LogisticMap

    task = LogisticMap()
    assert m.as_prior(task) is task.prior and m.as_prior(UNIFORM) is UNIFORM
    with pytest.raises(ValueError, match="prior must be"):
        m.as_prior(3.0)


def test_metrics_does_not_import_plotting():
    # plotting depends on metrics, never the reverse (DriftReport.plot defers its import to the call).
    import subprocess
    import sys

    code = "import sys, physmis_edu.metrics; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = out.stdout.split()
    assert "physmis_edu.plotting" not in loaded and "matplotlib" not in loaded


def test_frame_player_embeds_one_frame_per_key_and_needs_no_kernel():
    import matplotlib

    matplotlib.use("Agg", force=True)
    from physmis_edu.plotting import frame_player

    drawn = []

    def draw(fig, key):
        drawn.append(key)
        fig.add_subplot().plot([0, 1], [0, key])

    html = frame_player(draw, [1, 2, 3], figsize=(2, 1.5), dpi=40).data
    # The player's frames are base64 PNGs inside the page, scrubbed by plain JavaScript.
    assert html.count("data:image/png;base64") == 3
    assert "<script" in html and "ipywidgets" not in html
    assert set(drawn) == {1, 2, 3}
    with pytest.raises(ValueError, match="keys"):
        frame_player(draw, [])
    with pytest.raises(ValueError, match="interval"):
        frame_player(draw, [1], interval=0)


def test_grid_player_draws_every_combination_and_titles_each_frame():
    import matplotlib

    matplotlib.use("Agg", force=True)
    from physmis_edu.plotting import grid_player

    drawn = []

    def draw(fig, n, bins):
        drawn.append((n, bins))
        fig.add_subplot().plot([0, 1], [0, n * bins])

    html = grid_player(draw, {"n": [1, 2], "bins": [10, 20, 40]}, figsize=(2, 1.5),
                       dpi=40).data
    assert html.count("data:image/png;base64") == 6
    # The last parameter varies fastest, so one slider walks the grid row by row
    # (matplotlib draws the first frame twice: once to initialise the animation).
    assert list(dict.fromkeys(drawn)) == [(1, 10), (1, 20), (1, 40), (2, 10), (2, 20), (2, 40)]
    with pytest.raises(ValueError, match="grid"):
        grid_player(draw, {})
    with pytest.raises(ValueError, match=r"grid\['bins'\]"):
        grid_player(draw, {"n": [1], "bins": []})
