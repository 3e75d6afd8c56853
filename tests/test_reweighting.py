"""Reweighting the training data by a kernel's prediction (synthetic kernels, no training)."""

import numpy as np
import pytest

from physmis_edu.metrics import prior_probs, recovered_histogram, total_variation
from physmis_edu.mitigations.reweighting import (Reweighting, Transition, iterative_weights,
                                                 kernel_weights, transition_matrix,
                                                 weighted_resample)
from physmis_edu.tasks.base import Prior

LO, HI, BINS = 0.0, 1.0, 20
PRIOR = Prior(LO, HI)


def _biased(n=40_000, seed=0):
    """A synthetic kernel c~ = c + bias(c) + noise with a known bias, c^2 - c (pulls c down in the
    middle, keeps the ends): it moves mass between bins, and a little below lo."""
    rng = np.random.default_rng(seed)
    c = PRIOR.sample(n, rng)
    return c, c + (c ** 2 - c) + 0.02 * rng.standard_normal(n)


def _leaky(f_every=5):
    """Every bin sends exactly 1/f_every of its controls outside (below, above, or failed), the
    rest stays in its bin: the out-of-range floor is exactly 1/f_every."""
    n = BINS * 500
    c = (np.arange(n) + 0.5) / n
    c_pert = c.copy()
    out = np.arange(n) % f_every == 0
    kind = (np.arange(n) // f_every) % 3
    c_pert[out & (kind == 0)] = LO - 0.1
    c_pert[out & (kind == 1)] = HI + 0.1
    c_pert[out & (kind == 2)] = np.nan
    return c, c_pert


def _inside_tv(r: Reweighting, probs) -> float:
    inside = probs[:BINS]
    return total_variation(r.prior_inside, inside / inside.sum())


def test_transition_matrix_columns_and_rows():
    c = np.array([0.01, 0.02, 0.5, 1.0, 0.99])
    c_pert = np.array([0.01, -0.5, np.nan, 1.0, 1.5])
    t = transition_matrix(c, c_pert, LO, HI, bins=4)
    assert isinstance(t, Transition)
    assert t.matrix.shape == t.counts.shape == (4, 7)
    # bin 0: one stays (column 0), one below (column 4); bin 2 (0.5): failed (column 6);
    # bin 3: hi itself is in the last bin (column 3), 1.5 above (column 5); bin 1: no data
    assert t.counts[0].tolist() == [1, 0, 0, 0, 1, 0, 0]
    assert t.counts[1].tolist() == [0] * 7
    assert t.counts[2].tolist() == [0, 0, 0, 0, 0, 0, 1]
    assert t.counts[3].tolist() == [0, 0, 0, 1, 0, 1, 0]
    assert t.has_data.tolist() == [True, False, True, True]
    assert np.isfinite(t.matrix).all()
    np.testing.assert_allclose(t.matrix.sum(axis=1), [1, 0, 1, 1])
    assert t.min_outside == pytest.approx(0.5)
    assert t.unreachable.tolist() == [False, True, True, False]


def test_weights_match_the_library_histogram():
    # Under uniform weights the prediction is the library's recovered histogram of c~.
    c, c_pert = _biased()
    r = kernel_weights(c, PRIOR, c_pert, LO, HI)
    h = recovered_histogram(c_pert, LO, HI, BINS)
    before = r.predicted_probs_before
    np.testing.assert_allclose(before[:BINS], h.counts[1:-1] / h.n_total)
    np.testing.assert_allclose(before[BINS:BINS + 2], [h.counts[0] / h.n_total,
                                                       h.counts[-1] / h.n_total])
    assert before[-1] == pytest.approx(h.failed_fraction)
    # and the prediction after is the weighted histogram of c~
    after = np.bincount(np.clip(np.searchsorted(np.linspace(LO, HI, BINS + 1), c_pert,
                                                side="right") - 1, 0, BINS - 1)
                        [(c_pert >= LO) & (c_pert < HI)],
                        weights=r.weights[(c_pert >= LO) & (c_pert < HI)], minlength=BINS)
    np.testing.assert_allclose(after / r.weights.sum(), r.predicted_probs_after[:BINS],
                               atol=1e-12)
    np.testing.assert_allclose(r.prior_inside, prior_probs(PRIOR, BINS)[1:-1])


def test_iterative_beats_p_over_q_hat_and_uniform():
    c, c_pert = _biased()
    simple = kernel_weights(c, PRIOR, c_pert, LO, HI)
    rl = iterative_weights(c, PRIOR, c_pert, LO, HI, iterations=50)
    uniform = simple.tv_inside_before
    assert uniform == pytest.approx(rl.tv_inside_before)
    # the numbers of this kernel (40k pairs): uniform 0.22, p/q_hat 0.09, Richardson-Lucy 0.01
    assert uniform == pytest.approx(0.22, abs=0.02)
    assert simple.tv_inside_after == pytest.approx(0.086, abs=0.015)
    assert rl.tv_inside_after < 0.015
    assert rl.tv_inside_after < 0.5 * simple.tv_inside_after
    assert rl.tv_inside_after < 0.1 * uniform
    # the properties agree with the library's total variation
    assert rl.tv_inside_after == pytest.approx(_inside_tv(rl, rl.predicted_probs_after))
    assert rl.tv_after >= rl.predicted_outside_after - 1e-12
    for r in (simple, rl):
        assert r.predicted_probs_after.shape == (BINS + 3,)
        assert r.predicted_probs_after.sum() == pytest.approx(1.0)
        assert r.predicted_outside_after >= r.min_outside - 1e-12
        assert r.n_clipped == 0
        assert 0 < r.effective_sample_size < c.size


def test_the_out_of_range_floor():
    f = 0.2
    c, c_pert = _leaky(f_every=5)
    for r in (kernel_weights(c, PRIOR, c_pert, LO, HI),
              iterative_weights(c, PRIOR, c_pert, LO, HI)):
        assert r.min_outside == pytest.approx(f, abs=1e-12)
        assert r.predicted_outside_after >= r.min_outside - 1e-9
        assert r.predicted_outside_after == pytest.approx(f, abs=1e-9)
        assert r.tv_after >= f - 1e-9
        # the inside shape is already the prior's: nothing to correct there
        assert r.tv_inside_after < 1e-9
        np.testing.assert_allclose(r.weights, 1.0)


def test_floor_is_the_best_row_not_the_mean():
    # Outside fraction grows with c: the floor is the lowest row's, and reweighting towards the
    # prior cannot reach it (it would have to drop the leaky bins).
    rng = np.random.default_rng(3)
    c = PRIOR.sample(20_000, rng)
    c_pert = np.where(rng.random(c.size) < 0.05 + 0.4 * c, np.nan, c)
    t = transition_matrix(c, c_pert, LO, HI)
    r = iterative_weights(c, PRIOR, c_pert, LO, HI)
    assert r.min_outside == pytest.approx(t.min_outside)
    assert r.min_outside == pytest.approx(0.06, abs=0.03)
    assert r.predicted_outside_after > r.min_outside + 0.1
    # the weights that flatten the inside shape, 1 / (0.95 - 0.4 c), raise the out-of-range
    # mass from 0.25 to 1 - 1 / (2.5 ln(0.95 / 0.55)) = 0.268
    assert r.tv_inside_after < 0.01
    assert r.predicted_outside_before == pytest.approx(0.25, abs=0.01)
    assert r.predicted_outside_after == pytest.approx(0.268, abs=0.01)


def test_unreachable_bins_are_a_floor_of_the_shape():
    # A kernel that shrinks every control towards 0.5 never recovers one near lo or hi.
    rng = np.random.default_rng(1)
    c = PRIOR.sample(20_000, rng)
    c_pert = 0.5 + 0.7 * (c - 0.5) + 0.01 * rng.standard_normal(c.size)
    for r in (kernel_weights(c, PRIOR, c_pert, LO, HI),
              iterative_weights(c, PRIOR, c_pert, LO, HI)):
        assert r.unreachable_prior_mass == pytest.approx(0.2)
        assert r.tv_inside_after >= r.unreachable_prior_mass - 1e-9
    # p / q_hat caps the empty bins' ratio at clip, and says so
    simple = kernel_weights(c, PRIOR, c_pert, LO, HI, clip=20.0)
    assert simple.n_clipped == pytest.approx(0.2 * c.size, rel=0.05)


def test_weights_are_nonnegative_mean_one_and_deterministic():
    c, c_pert = _biased(n=5_000, seed=2)
    for fn in (kernel_weights, iterative_weights):
        a = fn(c, PRIOR, c_pert, LO, HI)
        b = fn(c, PRIOR, c_pert, LO, HI)
        assert (a.weights >= 0).all()
        assert a.weights.mean() == pytest.approx(1.0)
        np.testing.assert_array_equal(a.weights, b.weights)
        rows = np.minimum((c * BINS).astype(int), BINS - 1)
        np.testing.assert_allclose(a.weights, a.bin_weights[rows])
        assert str(a)


def test_clip_caps_the_ratio():
    c, c_pert = _biased(n=5_000, seed=4)
    free = iterative_weights(c, PRIOR, c_pert, LO, HI)
    assert free.n_clipped == 0 and free.weights.max() > 1.5
    for r in (iterative_weights(c, PRIOR, c_pert, LO, HI, clip=1.2),
              kernel_weights(c, PRIOR, c_pert, LO, HI, clip=1.0)):
        assert r.n_clipped > 0
        assert r.weights.mean() == pytest.approx(1.0)
        # the capped trajectories share the largest weight, and only they hold it
        assert int(np.isclose(r.weights, r.weights.max()).sum()) == r.n_clipped
        assert r.weights.max() < free.weights.max()


def test_bins_without_training_data():
    c = np.r_[np.full(50, 0.1), np.full(50, 0.9)]
    r = iterative_weights(c, PRIOR, c, LO, HI, bins=10)
    assert np.isnan(r.bin_weights).sum() == 8
    assert np.isfinite(r.weights).all()
    assert r.transition.has_data.sum() == 2


def test_weighted_resample_follows_the_weights():
    w = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    x = np.zeros((5, 3, 1))
    n = 50_000
    idx = weighted_resample(x, w, n=n, rng=0)
    assert idx.shape == (n,)
    counts = np.bincount(idx, minlength=5)
    assert counts[0] == 0
    expected = n * w / w.sum()
    chi2 = float(((counts[1:] - expected[1:]) ** 2 / expected[1:]).sum())
    assert chi2 < 16.3  # chi-square, 3 degrees of freedom, p = 0.001
    np.testing.assert_array_equal(idx, weighted_resample(x, w, n=n, rng=0))
    assert weighted_resample(x, w, rng=1).shape == (5,)


@pytest.mark.parametrize("call, match", [
    (lambda c, cp: kernel_weights(c, PRIOR, cp[:-1], LO, HI), "predicted_values"),
    (lambda c, cp: iterative_weights(c[:-1], PRIOR, cp, LO, HI), "c_perturbed"),
    (lambda c, cp: transition_matrix(c, cp[:-1], LO, HI), "c_perturbed"),
    (lambda c, cp: kernel_weights(np.r_[c, np.nan], PRIOR, np.r_[cp, 0.5], LO, HI), "c_train"),
    (lambda c, cp: iterative_weights(np.r_[c, 1.5], PRIOR, np.r_[cp, 0.5], LO, HI), "c_train"),
    (lambda c, cp: kernel_weights(c, PRIOR, cp, LO, HI, bins=0), "bins"),
    (lambda c, cp: iterative_weights(c, PRIOR, cp, LO, HI, iterations=0), "iterations"),
    (lambda c, cp: iterative_weights(c, PRIOR, cp, LO, HI, iterations=2.5), "iterations"),
    (lambda c, cp: kernel_weights(c, PRIOR, cp, LO, HI, clip=0.5), "clip"),
    (lambda c, cp: kernel_weights(c, PRIOR, cp, LO, HI, clip=np.inf), "clip"),
    (lambda c, cp: kernel_weights(c, PRIOR, cp, LO, 2.0), "lo, hi"),
    (lambda c, cp: kernel_weights(c, "uniform", cp, LO, HI), "prior"),
    (lambda c, cp: kernel_weights(c, PRIOR, np.full(c.size, np.nan), LO, HI), "predicted_values"),
    (lambda c, cp: weighted_resample(np.zeros((3, 2, 1)), [1.0, -1.0, 1.0]), "weights"),
    (lambda c, cp: weighted_resample(np.zeros((3, 2, 1)), [1.0, 1.0]), "weights"),
    (lambda c, cp: weighted_resample(np.zeros((3, 2, 1)), [0.0, 0.0, 0.0]), "weights"),
    (lambda c, cp: weighted_resample(np.zeros((3, 2, 1)), [1.0, np.nan, 1.0]), "weights"),
    (lambda c, cp: weighted_resample(np.zeros((3, 2, 1)), [1.0, 1.0, 1.0], n=0), "n"),
    (lambda c, cp: weighted_resample(5, [1.0]), "x"),
])
def test_bad_input_names_the_argument(call, match):
    c, c_pert = _biased(n=200, seed=5)
    with pytest.raises(ValueError, match=match):
        call(c, c_pert)
