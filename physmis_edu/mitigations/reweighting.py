"""Reweighting the training data so that the kernel's predicted recovered distribution matches
the prior (Chapter 9).

A data deviation kernel predicts how a model trained on controls ``c ~ p_data`` recovers them:
``q_hat``. If ``q_hat`` has too much mass in some bin, the training set can be reweighted so
that, once the kernel has acted, the prediction is the prior ``p`` again. Two rules:

- :func:`kernel_weights`, the simple rule: a trajectory whose true control ``c_i`` lies in bin
  ``b`` gets weight ``p(b) / q_hat(b)``. It treats the kernel as if it kept every control in its
  own bin, which it does not when it moves mass between bins.
- :func:`iterative_weights`: Richardson-Lucy deconvolution on the kernel's transition matrix
  ``T[b, b'] = P(recovered bin b' | true bin b)`` (:func:`transition_matrix`), estimated from the
  pairs ``(c_i, c~_i)``, ``c~_i = task.measure(kernel.perturb(x_i))``. It finds bin weights
  ``w_b >= 0`` with ``sum_b w_b p0(b) T[b, b'] ~ p(b')`` on the bins inside ``[lo, hi]``
  (``p0``: the training controls' own bin fractions).

What no reweighting can do: a kernel that sends a fraction of every bin's trajectories outside
``[lo, hi]`` (or to failed recoveries) keeps sending it there, whatever the weights. The
predicted out-of-range mass under any non-negative weights of the bins is a mix of the rows'
out-of-range fractions, so it is at least the smallest of them: :attr:`Reweighting.min_outside`
is that floor, :attr:`Reweighting.predicted_outside_after` the mass under the chosen weights.
The floor holds for weights that depend on a trajectory's bin of ``c``; weights that read a
trajectory's own ``c~_i`` would only fit the kernel's random draw. Likewise, an inside bin
that the kernel never recovers a control in stays empty under any weights
(:attr:`Reweighting.unreachable_prior_mass`, a floor of the inside shape's distance to ``p``).

Models take no weights: :func:`weighted_resample` turns weights into a training set, by
multinomial resampling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import as_rng, check_positive_int, check_range, check_real, check_values
from ..metrics import _bin_index, as_prior, bin_edges, prior_probs

__all__ = ["Transition", "transition_matrix", "Reweighting", "kernel_weights",
           "iterative_weights", "weighted_resample"]


@dataclass
class Transition:
    """A kernel's transition matrix between bins of the control, estimated from pairs
    (Chapter 9).

    ``counts[b, j]``: training trajectories with true control in inside bin ``b`` whose
    perturbed recovery landed in column ``j``; ``matrix`` is ``counts`` divided by its row
    sums, ``P(column j | true bin b)``. Shape ``(bins, bins + 3)``; the columns are the
    ``bins`` inside bins of ``[lo, hi]`` (in order), then ``below lo``, ``above hi`` and
    ``failed`` (a ``NaN`` recovery). A row with no training data is all zeros in both (not
    ``NaN``), and ``has_data`` is ``False`` for it.
    """

    matrix: np.ndarray
    counts: np.ndarray
    edges: np.ndarray

    @property
    def bins(self) -> int:
        return self.edges.size - 1

    @property
    def has_data(self) -> np.ndarray:
        """Whether each true bin holds at least one training control, shape ``(bins,)``."""
        return self.counts.sum(axis=1) > 0

    @property
    def inside_fraction(self) -> np.ndarray:
        """Per true bin, the fraction recovered inside ``[lo, hi]`` (0 for rows without data)."""
        return self.matrix[:, :self.bins].sum(axis=1)

    @property
    def outside_fraction(self) -> np.ndarray:
        """Per true bin, the fraction recovered below, above or failed; ``NaN`` for rows
        without data (they have no fraction)."""
        out = self.matrix[:, self.bins:].sum(axis=1)
        return np.where(self.has_data, out, np.nan)

    @property
    def unreachable(self) -> np.ndarray:
        """Inside bins no row with data reaches (the kernel never recovers a control there),
        shape ``(bins,)``: no weighting puts predicted mass in them."""
        return self.counts[:, :self.bins].sum(axis=0) == 0

    @property
    def min_outside(self) -> float:
        """The smallest out-of-range fraction of a row with data: the least out-of-range mass
        any non-negative weighting of the bins can reach."""
        return float(np.nanmin(self.outside_fraction))

    def __repr__(self) -> str:
        return (f"Transition({self.bins} bins on [{self.edges[0]:g}, {self.edges[-1]:g}], "
                f"n={int(self.counts.sum())}, rows with data {int(self.has_data.sum())}, "
                f"min_outside={self.min_outside:.3g})")


def _check_lengths(c_true: np.ndarray, other: np.ndarray, name_true: str, name: str) -> None:
    if other.size != c_true.size:
        raise ValueError(f"{name} must have one value per training control ({name_true} has "
                         f"{c_true.size}); got {other.size}")


def _check_inside(c: np.ndarray, lo: float, hi: float, name: str) -> None:
    bad = (c < lo) | (c > hi)
    if bad.any():
        raise ValueError(f"{name} must lie in [lo, hi] = [{lo:g}, {hi:g}] (true controls drawn "
                         f"from the prior); {int(bad.sum())} values outside")


def _columns(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Column of each recovered value: inside bins ``0..B-1``, below ``B``, above ``B+1``,
    failed ``B+2`` (the library's binning, ``metrics._bin_index``)."""
    bins = edges.size - 1
    col = np.full(values.shape, bins + 2, dtype=np.int64)
    finite = ~np.isnan(values)
    idx = _bin_index(values[finite], edges)  # 0 below, 1..B inside, B+1 above
    col[finite] = np.where(idx == 0, bins, np.where(idx == bins + 1, bins + 1, idx - 1))
    return col


def _true_bins(c: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Inside bin ``0..B-1`` of each true control (all inside ``[lo, hi]``)."""
    return _bin_index(c, edges) - 1


def _transition(c_true: np.ndarray, c_perturbed: np.ndarray, edges: np.ndarray) -> Transition:
    bins = edges.size - 1
    rows, cols = _true_bins(c_true, edges), _columns(c_perturbed, edges)
    counts = np.bincount(rows * (bins + 3) + cols, minlength=bins * (bins + 3))
    counts = counts.reshape(bins, bins + 3).astype(np.int64)
    total = counts.sum(axis=1, keepdims=True)
    matrix = np.divide(counts, total, out=np.zeros(counts.shape), where=total > 0)
    return Transition(matrix, counts, edges)


def transition_matrix(c_true, c_perturbed, lo: float, hi: float, bins: int = 20) -> Transition:
    """The kernel's transition matrix between bins, from pairs ``(c_i, c~_i)`` (Chapter 9).

    ``c_true``: the training controls, inside ``[lo, hi]``; ``c_perturbed``: the recovered
    controls of the kernel-perturbed training trajectories, one per control, ``NaN`` where the
    recovery failed (as :func:`physmis_edu.kernels.predict_recovered` returns them). Bins follow
    the library's convention (:func:`physmis_edu.metrics.bin_edges`, ``hi`` in the last bin).
    Returns a :class:`Transition`: ``matrix`` of shape ``(bins, bins + 3)``, columns the inside
    bins, then below, above, failed.
    """
    edges = bin_edges(lo, hi, bins)
    lo, hi = float(edges[0]), float(edges[-1])
    c_true = check_values(c_true, "c_true")
    c_perturbed = check_values(c_perturbed, "c_perturbed", allow_nan=True)
    _check_lengths(c_true, c_perturbed, "c_true", "c_perturbed")
    _check_inside(c_true, lo, hi, "c_true")
    return _transition(c_true, c_perturbed, edges)


@dataclass
class Reweighting:
    """Weights for the training set and the recovered distribution the kernel predicts under
    them (Chapter 9).

    ``weights``: one per training trajectory, non-negative, mean 1 (feed them to
    :func:`weighted_resample`). ``bin_weights``: the weight of each true bin on the same scale
    (``weights[i] = bin_weights[bin of c_i]``), ``NaN`` for bins without training controls.
    ``n_clipped``: trajectories whose bin's ratio was capped at ``clip``.

    ``predicted_probs_before`` / ``predicted_probs_after``: the predicted recovered
    distribution under uniform weights / under ``weights``, shape ``(bins + 3,)``, in the
    columns of :class:`Transition` (inside bins, below, above, failed), summing to 1.
    ``predicted_outside_after``: its mass below, above or failed. ``min_outside``: the floor
    that mass cannot go below under any non-negative weights of the bins
    (:attr:`Transition.min_outside`); :attr:`unreachable_prior_mass` is the like floor of the
    inside shape. ``prior_inside``: the prior's inside bin probabilities.
    """

    weights: np.ndarray
    bin_weights: np.ndarray
    n_clipped: int
    predicted_probs_before: np.ndarray
    predicted_probs_after: np.ndarray
    predicted_outside_after: float
    min_outside: float
    prior_inside: np.ndarray
    transition: Transition
    method: str
    clip: float
    iterations: int = 0

    @property
    def bins(self) -> int:
        return self.prior_inside.size

    @property
    def predicted_outside_before(self) -> float:
        """Predicted out-of-range mass (below, above, failed) under uniform weights."""
        return float(self.predicted_probs_before[self.bins:].sum())

    def _tv_inside(self, probs: np.ndarray) -> float:
        inside = probs[:self.bins]
        total = inside.sum()
        if total <= 0:
            return float("nan")
        return float(0.5 * np.abs(inside / total - self.prior_inside).sum())

    def _tv_all(self, probs: np.ndarray) -> float:
        return float(0.5 * (np.abs(probs[:self.bins] - self.prior_inside).sum()
                            + probs[self.bins:].sum()))

    @property
    def tv_inside_before(self) -> float:
        """TV between the prior and the prediction's inside bins (renormalised to sum 1), under
        uniform weights: the shape of the drift, apart from the out-of-range mass."""
        return self._tv_inside(self.predicted_probs_before)

    @property
    def tv_inside_after(self) -> float:
        """As :attr:`tv_inside_before`, under ``weights``."""
        return self._tv_inside(self.predicted_probs_after)

    @property
    def tv_before(self) -> float:
        """TV between the prior and the whole prediction, the out-of-range mass counted as
        misplaced (as :func:`physmis_edu.metrics.tv_with_failures`), under uniform weights."""
        return self._tv_all(self.predicted_probs_before)

    @property
    def tv_after(self) -> float:
        """As :attr:`tv_before`, under ``weights``; never below ``min_outside``."""
        return self._tv_all(self.predicted_probs_after)

    @property
    def unreachable_prior_mass(self) -> float:
        """The prior's mass in inside bins the kernel never reaches
        (:attr:`Transition.unreachable`): the second floor, below which no weighting brings
        :attr:`tv_inside_after`."""
        return float(self.prior_inside[self.transition.unreachable].sum())

    @property
    def effective_sample_size(self) -> float:
        """``(sum w)^2 / sum w^2``: how many unweighted trajectories the weighted set is worth."""
        return float(self.weights.sum() ** 2 / np.square(self.weights).sum())

    def __str__(self) -> str:
        return (f"{self.method} reweighting of {self.weights.size} trajectories "
                f"({self.bins} bins, clip {self.clip:g}, {self.n_clipped} clipped; effective "
                f"sample size {self.effective_sample_size:.0f})\n"
                f"  predicted TV inside [lo, hi]: {self.tv_inside_before:.4f} -> "
                f"{self.tv_inside_after:.4f}\n"
                f"  predicted out-of-range mass: {self.predicted_outside_before:.4f} -> "
                f"{self.predicted_outside_after:.4f} (no reweighting goes below "
                f"{self.min_outside:.4f})")

    def _repr_pretty_(self, printer, cycle):
        printer.text(str(self))


def _check_clip(clip) -> float:
    clip = check_real(clip, "clip", "a finite number >= 1 (the largest allowed weight ratio)")
    if not np.isfinite(clip) or clip < 1.0:
        raise ValueError(f"clip must be a finite number >= 1 (the largest allowed weight "
                         f"ratio); got {clip!r}")
    return clip


def _setup(c_train, prior, c_perturbed, lo, hi, bins, clip, name: str):
    """Validate the shared arguments; return ``(edges, p_inside, rows, transition, clip)``."""
    prior = as_prior(prior)
    lo, hi = check_range(lo, hi, "control range (lo, hi)")
    if (lo, hi) != (prior.lo, prior.hi):
        raise ValueError(f"lo, hi must be the prior's range [{prior.lo:g}, {prior.hi:g}]; "
                         f"got [{lo:g}, {hi:g}]")
    bins = check_positive_int(bins, "bins")
    clip = _check_clip(clip)
    c_train = check_values(c_train, "c_train")
    c_perturbed = check_values(c_perturbed, name, allow_nan=True)
    _check_lengths(c_train, c_perturbed, "c_train", name)
    _check_inside(c_train, lo, hi, "c_train")
    edges = bin_edges(lo, hi, bins)
    p_inside = prior_probs(prior, bins)[1:-1]
    rows, t = _true_bins(c_train, edges), _transition(c_train, c_perturbed, edges)
    return edges, p_inside, rows, t, clip


def _predicted(p0: np.ndarray, w: np.ndarray, t: Transition) -> np.ndarray:
    """Predicted recovered distribution (columns of ``t``) for bin weights ``w``."""
    u = p0 * np.nan_to_num(w)
    return (u / u.sum()) @ t.matrix


def _result(rows, w_bins, capped, p0, p_inside, t, method, clip, iterations) -> Reweighting:
    """Scale the bin weights to mean 1 over the trajectories and assemble the result."""
    w_bins = np.where(p0 > 0, w_bins, np.nan)
    mean = float(np.nansum(p0 * w_bins))
    if not mean > 0:
        raise ValueError("every training trajectory got weight 0: the prior puts no mass in "
                         "the bins that hold the training controls (check prior and c_train)")
    w_bins = w_bins / mean
    after = _predicted(p0, w_bins, t)
    return Reweighting(
        weights=w_bins[rows], bin_weights=w_bins, n_clipped=int(capped[rows].sum()),
        predicted_probs_before=_predicted(p0, np.ones_like(p0), t),
        predicted_probs_after=after, predicted_outside_after=float(after[t.bins:].sum()),
        min_outside=t.min_outside, prior_inside=p_inside, transition=t, method=method,
        clip=clip, iterations=iterations)


def kernel_weights(c_train, prior, predicted_values, lo: float, hi: float, bins: int = 20,
                   clip: float = 20.0) -> Reweighting:
    """Weights ``p(b) / q_hat(b)`` per training trajectory, ``b`` the bin of its true control
    (Chapter 9).

    ``c_train``: the training controls, inside ``[lo, hi]``. ``prior``: a
    :class:`~physmis_edu.tasks.Prior` (or a ``Task``), whose range must be ``[lo, hi]``.
    ``predicted_values``: the kernel-predicted recovered controls of the same training set,
    one per control, ``NaN`` for failures
    (:func:`physmis_edu.kernels.predict_recovered` of the training trajectories).

    ``p`` and ``q_hat`` are the bin probabilities inside ``[lo, hi]``, each normalised to sum 1
    there, so the ratio compares shapes: it is 1 where the kernel predicts the prior's share.
    Mass the kernel sends outside the range is not in the ratio (no weight can remove it; see
    ``min_outside``). ``clip``: the largest allowed ratio, ``>= 1``. A ratio above it is set to
    ``clip``, and so is the ratio of a bin where ``q_hat`` is zero and ``p`` is not; the
    result's ``n_clipped`` counts the trajectories so capped. The capped ratios are then scaled
    to mean 1 over the trajectories.

    The rule assumes the kernel keeps each control in its own bin; a kernel that moves mass
    between bins is better served by :func:`iterative_weights`.
    """
    edges, p_inside, rows, t, clip = _setup(c_train, prior, predicted_values, lo, hi, bins,
                                            clip, "predicted_values")
    q_counts = t.counts[:, :t.bins].sum(axis=0).astype(np.float64)
    if q_counts.sum() == 0:
        raise ValueError(f"predicted_values: none of the {rows.size} values lies inside "
                         f"[{edges[0]:g}, {edges[-1]:g}], so q_hat has no inside bins and "
                         "p / q_hat is undefined")
    q_inside = q_counts / q_counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(q_inside > 0, p_inside / q_inside, np.where(p_inside > 0, np.inf, 0.0))
    capped = ratio >= clip
    ratio = np.minimum(ratio, clip)
    p0 = np.bincount(rows, minlength=t.bins) / rows.size
    return _result(rows, ratio, capped, p0, p_inside, t, "p / q_hat", clip, 0)


def iterative_weights(c_train, prior, c_perturbed, lo: float, hi: float, bins: int = 20,
                      iterations: int = 50, clip: float = 20.0) -> Reweighting:
    """Bin weights by Richardson-Lucy deconvolution on the kernel's transition matrix
    (Chapter 9).

    ``c_train``, ``prior``, ``lo``, ``hi``: as in :func:`kernel_weights`. ``c_perturbed``: the
    recovered controls of the kernel-perturbed training trajectories, one per control, ``NaN``
    for failures. ``T`` is :func:`transition_matrix` of the pairs, ``p0`` the training controls'
    bin fractions, ``p`` the prior's inside bin probabilities. Starting from ``w = 1``, each of
    ``iterations`` steps updates every bin with training data by::

        w_b <- w_b * sum_{b' inside} T[b, b'] p(b') / q(b')  /  sum_{b' inside} T[b, b']

    with ``q(b') = sum_a w_a p0(a) T[a, b']``, then scales ``w`` to mean 1 over the trajectories
    and caps it at ``clip`` (``>= 1``; ``n_clipped`` counts the trajectories capped in the
    last step). The inside bins of ``q`` approach ``p`` up to a common factor: the mass ``T``
    sends below, above or to failures stays there (``predicted_outside_after`` is at least
    ``min_outside``). A bin whose row sends nothing inside ``[lo, hi]`` gets weight 0: it could
    only add out-of-range mass.
    """
    edges, p_inside, rows, t, clip = _setup(c_train, prior, c_perturbed, lo, hi, bins, clip,
                                            "c_perturbed")
    iterations = check_positive_int(iterations, "iterations")
    p0 = np.bincount(rows, minlength=t.bins) / rows.size
    inside = t.matrix[:, :t.bins]
    efficiency = inside.sum(axis=1)
    active = (p0 > 0) & (efficiency > 0)
    if not active.any():
        raise ValueError(f"c_perturbed: no training trajectory's perturbed recovery lies "
                         f"inside [{edges[0]:g}, {edges[-1]:g}]; no weights can move mass there")
    w = active.astype(np.float64)
    capped = np.zeros(t.bins, dtype=bool)
    for _ in range(iterations):
        q = (p0 * w) @ inside
        ratio = np.divide(p_inside, q, out=np.zeros_like(q), where=q > 0)
        factor = np.divide(inside @ ratio, efficiency, out=np.zeros_like(w), where=active)
        w = w * factor
        mean = float(p0 @ w)
        if not mean > 0:
            raise ValueError("every bin's weight fell to 0: the kernel sends the training "
                             "controls only to bins where the prior has no mass")
        w = w / mean
        capped = w >= clip
        w = np.minimum(w, clip)
    return _result(rows, w, capped, p0, p_inside, t, "Richardson-Lucy", clip, iterations)


def weighted_resample(x, weights, n: int | None = None, rng=None) -> np.ndarray:
    """Indices of a training set resampled by ``weights``, for models that take no weights
    (Chapter 9).

    ``x``: the training set (any array whose first axis indexes trajectories; only its length
    is read). ``weights``: one finite, non-negative weight per trajectory, not all zero (e.g.
    :attr:`Reweighting.weights`). Draws ``n`` indices (default ``len(x)``) independently with
    probabilities ``weights / sum(weights)``: the counts are multinomial. Use ``x[idx]`` and
    ``c[idx]``. Resampling duplicates heavily weighted trajectories; the reweighted set is worth
    about :attr:`Reweighting.effective_sample_size` distinct ones.
    """
    try:
        size = len(x)
    except TypeError as err:
        raise ValueError(f"x must be an array of training trajectories (with a length); "
                         f"got {type(x).__name__}") from err
    if size == 0:
        raise ValueError("x is empty; expected at least one trajectory")
    weights = check_values(weights, "weights")
    if weights.size != size:
        raise ValueError(f"weights must have one value per trajectory of x ({size}); "
                         f"got {weights.size}")
    if (weights < 0).any():
        raise ValueError(f"weights must be >= 0; {int((weights < 0).sum())} are negative")
    total = weights.sum()
    if not total > 0:
        raise ValueError("weights are all zero; at least one trajectory needs a positive weight")
    n = size if n is None else check_positive_int(n, "n")
    return as_rng(rng).choice(size, size=n, p=weights / total)
