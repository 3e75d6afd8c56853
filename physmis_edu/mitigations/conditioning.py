"""Conditioning on the control: does the sample recover to the value asked for? (Chapter 9)

A conditional model ``p_theta(x | c)`` is fitted on pairs ``(x_i, c_i)`` and sampled with
requested controls ``c ~ p(c)``. If each sample recovered to its request, the recovered
distribution would be the prior by construction. This module measures how far that holds:
the recovered value against the requested one, and the recovered distribution against the prior.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_positive_int, check_values
from ..metrics import bin_edges, pearson

__all__ = ["ConditioningReport", "requested_vs_recovered"]


@dataclass
class ConditioningReport:
    """Recovered against requested controls (Chapter 9).

    ``rmse`` and ``bias`` (mean of recovered minus requested) over the finite recoveries,
    ``pearson`` between the two, ``failed`` (fraction of failed recoveries), ``outside``
    (fraction recovered outside ``[lo, hi]``, failures excluded) and, per bin of the requested
    value, ``bin_centres``, ``bin_bias`` and ``bin_spread`` (standard deviation of the error).
    """

    rmse: float
    bias: float
    pearson: float
    failed: float
    outside: float
    bin_centres: np.ndarray
    bin_bias: np.ndarray
    bin_spread: np.ndarray

    def __str__(self) -> str:
        return (f"recovered - requested: RMSE {self.rmse:.4g}, bias {self.bias:+.4g}, "
                f"Pearson {self.pearson:.3f}; failed {self.failed:.1%}, "
                f"outside the range {self.outside:.1%}")


def requested_vs_recovered(requested, recovered, lo: float, hi: float,
                           bins: int = 10) -> ConditioningReport:
    """Compare the controls a conditional model was asked for with those its samples recover to
    (Chapter 9).

    ``requested``: finite values, one per sample; ``recovered``: ``task.measure(samples)``
    (``NaN`` marks a failed recovery). ``lo``, ``hi``: the prior's range.
    """
    requested = check_values(requested, "requested")
    recovered = check_values(recovered, "recovered", allow_nan=True)
    if requested.shape != recovered.shape:
        raise ValueError(f"requested and recovered must have the same length; got "
                         f"{requested.size} and {recovered.size}")
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"lo and hi must be finite with lo < hi; got {lo}, {hi}")
    bins = check_positive_int(bins, "bins")
    if requested.min() < lo or requested.max() > hi:
        raise ValueError(f"requested must lie in [lo, hi] = [{lo}, {hi}]; got values from "
                         f"{requested.min():.4g} to {requested.max():.4g}")
    ok = ~np.isnan(recovered)
    if not ok.any():
        raise ValueError("every recovery failed (recovered is all NaN); nothing to compare")
    err = recovered[ok] - requested[ok]
    edges = bin_edges(lo, hi, bins)
    idx = np.clip(np.searchsorted(edges, requested[ok], side="right") - 1, 0, bins - 1)
    bias = np.full(bins, np.nan)
    spread = np.full(bins, np.nan)
    for b in range(bins):
        e = err[idx == b]
        if e.size:
            bias[b], spread[b] = e.mean(), e.std()
    inside = (recovered[ok] >= lo) & (recovered[ok] <= hi)
    return ConditioningReport(
        rmse=float(np.sqrt(np.mean(err ** 2))), bias=float(err.mean()),
        pearson=pearson(requested[ok], recovered[ok]), failed=float(1 - ok.mean()),
        outside=float(1 - inside.mean()), bin_centres=0.5 * (edges[1:] + edges[:-1]),
        bin_bias=bias, bin_spread=spread)
