"""Curation by stratified rejection: the recovered control follows the prior, extras ride along."""

import numpy as np
import pytest

from physmis_edu import metrics as m
from physmis_edu.curation import bin_quotas, curate
from physmis_edu.tasks import LogisticMap, Prior

TASK = LogisticMap(3.6, 4.0)
WIDE = LogisticMap(3.4, 4.0)


def propose_skewed(n, rng):
    """Candidates whose r is not uniform (squeezed towards 4) and wider than the target range."""
    r = 4.0 - 0.6 * rng.random(n) ** 2
    x = WIDE.generate(r, rng)
    return x, {"r_true": r, "start": x[:, 0, 0].copy()}


def test_quotas_sum_to_n_and_follow_prior():
    quotas = bin_quotas(Prior(0, 1, density=lambda c: c), 1000, bins=10)
    assert quotas.sum() == 1000 and np.all(np.diff(quotas) > 0)
    assert bin_quotas(TASK.prior, 7, bins=20).sum() == 7


def test_curated_recovered_values_pass_the_null_and_extras_ride_along():
    cur = curate(propose_skewed, TASK.measure, TASK.prior, n=3000, rng=0, batch=2048)
    assert cur.x.shape == (3000, 32, 1) and cur.c.shape == (3000,)
    assert 0.0 < cur.acceptance_rate < 1.0 and cur.n_proposed >= 3000
    assert np.isclose(cur.acceptance_rate, 3000 / cur.n_proposed)
    recovered = TASK.measure(cur.x)
    # c is the stored trajectory's recovered value, and that is the r the generator used.
    assert np.array_equal(cur.c, recovered) and np.allclose(cur.extras["r_true"], recovered, atol=1e-5)
    assert np.unique(cur.extras["r_true"]).size == 3000  # distinct trajectories, not copies
    assert np.array_equal(cur.extras["start"], cur.x[:, 0, 0])
    for bins in (20, 37):  # 37 bins: also inside the curation bins the distribution is flat
        report = m.drift_report(recovered, TASK.prior, bins=bins, rng=1)
        assert not report.significant, (bins, report.tv, report.null_tv99)
    # Uncurated, the same proposal drifts far above the null.
    x, _ = propose_skewed(3000, np.random.default_rng(2))
    assert m.drift_report(TASK.measure(x), TASK.prior, rng=3).significant


def test_non_uniform_prior_within_bins():
    prior = Prior(3.6, 4.0, density=lambda c: (c - 3.55) ** 2)
    task = LogisticMap(3.6, 4.0, prior=prior)
    cur = curate(lambda n, rng: TASK.sample(n, rng)[0], task.measure, prior, n=3000, bins=2, rng=4)
    # Two quota bins, 40 test bins: only the within-bin thinning can give the density's shape
    # (without it TV is about 0.17 against a null99 of 0.054, and the mean is 0.02 low).
    report = m.drift_report(cur.c, prior, bins=40, rng=5)
    assert not report.significant, (report.tv, report.null_tv99)
    assert np.isclose(np.mean(cur.c), m.prior_mean(prior), atol=0.006)


def test_short_bins_raise_and_name_the_bins():
    def propose_low(n, rng):
        return TASK.generate(3.6 + 0.2 * rng.random(n), rng)  # never reaches r > 3.8

    with pytest.raises(ValueError, match=r"short: \[3\.8, 3\.82\)"):
        curate(propose_low, TASK.measure, TASK.prior, n=200, rng=0, batch=500, max_proposals=5000)


@pytest.mark.parametrize("kwargs", [
    dict(n=0), dict(batch=0), dict(bins=0), dict(propose="not callable"),
    dict(measure=lambda x: np.zeros(3)),
    dict(propose=lambda n, rng: (TASK.sample(n, rng)[0], {"id": np.arange(n + 1)})),
])
def test_bad_input_raises(kwargs):
    args = dict(propose=lambda n, rng: TASK.sample(n, rng)[0], measure=TASK.measure, prior=TASK.prior, n=50, rng=0)
    args.update(kwargs)
    with pytest.raises(ValueError):
        curate(**args)
