"""Measuring misalignment honestly: recovered histograms, distances, the finite-sample null.

Introduced in Chapter 1 (quiet failure) and used in every later chapter.
A recovered distribution ``q`` is a histogram over ``B`` equal bins on ``[lo, hi]`` plus one
overflow bin on each side; failed recoveries (``NaN``) are counted and reported, never dropped
silently. A drift is real only when it exceeds the finite-sample null: the distribution of
``TV(p, q_N)`` for ``N`` fresh true samples, with ``N`` the model's own sample size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ._validation import as_rng, check_positive_int, check_range, check_values

__all__ = [
    "Histogram", "recovered_histogram", "prior_probs", "bin_edges",
    "total_variation", "jensen_shannon", "wasserstein1", "wasserstein_to_prior", "shift",
    "null_tv", "null_quantile", "null_band", "bootstrap_ci", "prior_mean",
    "DriftReport", "drift_report",
]


def _wasserstein_distance(a, b):
    # scipy.stats costs about a second to import cold; load it only when a distance is asked for.
    from scipy.stats import wasserstein_distance

    return wasserstein_distance(a, b)


def _as_prior(prior):
    """Accept a ``Prior`` or anything carrying one (a ``Task``)."""
    if hasattr(prior, "bin_probs") and hasattr(prior, "lo"):
        return prior
    inner = getattr(prior, "prior", None)
    if inner is not None and hasattr(inner, "bin_probs"):
        return inner
    raise ValueError(f"prior must be a physmis_edu.tasks.Prior (or a Task); got {type(prior).__name__}")


def bin_edges(lo: float, hi: float, bins: int = 20) -> np.ndarray:
    """The ``bins + 1`` equal-width edges on ``[lo, hi]`` (Chapter 1)."""
    lo, hi = check_range(lo, hi, "histogram range (lo, hi)")
    bins = check_positive_int(bins, "bins")
    return np.linspace(lo, hi, bins + 1)


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Index into ``[underflow, bin_1..bin_B, overflow]`` for finite ``values``; ``hi`` itself is in the last bin."""
    bins = edges.size - 1
    inside = np.searchsorted(edges, values, side="right")  # 0 below lo, B+1 above hi
    inside[values == edges[-1]] = bins
    return inside


@dataclass
class Histogram:
    """A recovered histogram with overflow bins and a failure count (Chapter 1).

    ``counts`` has ``bins + 2`` entries: ``[below lo, bin_1, ..., bin_B, above hi]``, of the finite
    values only; ``n_failed`` counts the values that were not finite (failed recoveries).
    ``probs`` normalises by the number of finite values, so failures are reported beside the
    distribution, not hidden inside it.
    """

    edges: np.ndarray
    counts: np.ndarray
    n_failed: int
    n_total: int

    @property
    def bins(self) -> int:
        return self.edges.size - 1

    @property
    def n_finite(self) -> int:
        return self.n_total - self.n_failed

    @property
    def probs(self) -> np.ndarray:
        """Fraction of finite values per bin (all ``NaN`` when every recovery failed)."""
        if self.n_finite == 0:
            return np.full(self.counts.shape, np.nan)
        return self.counts / self.n_finite

    @property
    def out_of_support(self) -> float:
        """Mass in the two overflow bins (finite values outside ``[lo, hi]``)."""
        p = self.probs
        return float(p[0] + p[-1])

    @property
    def failed_fraction(self) -> float:
        return self.n_failed / self.n_total

    def __repr__(self) -> str:
        return (f"Histogram(bins={self.bins} on [{self.edges[0]:g}, {self.edges[-1]:g}], n={self.n_total}, "
                f"failed={self.n_failed}, out_of_support={self.out_of_support:.3g})")


def recovered_histogram(values, lo: float, hi: float, bins: int = 20) -> Histogram:
    """Histogram of recovered controls on ``bins`` equal bins of ``[lo, hi]`` plus overflow bins.

    Introduced in Chapter 1.
    ``NaN`` values are failed recoveries: they are counted in ``n_failed``.
    Infinite values raise ``ValueError``: a recovery must mark its failures as ``NaN``.
    """
    values = check_values(values, "values", allow_nan=True)
    edges = bin_edges(lo, hi, bins)
    finite = ~np.isnan(values)
    idx = _bin_index(values[finite], edges)
    counts = np.bincount(idx, minlength=edges.size + 1).astype(np.int64)
    return Histogram(edges, counts, int((~finite).sum()), int(values.size))


def prior_probs(prior, bins: int = 20) -> np.ndarray:
    """The prior's probability per bin, shape ``(bins + 2,)``, zero in the overflow bins (Chapter 1)."""
    prior = _as_prior(prior)
    edges = bin_edges(prior.lo, prior.hi, bins)
    inside = np.asarray(prior.bin_probs(edges), dtype=np.float64)
    return np.concatenate([[0.0], inside / inside.sum(), [0.0]])


def _check_probs(p, name: str) -> np.ndarray:
    p = check_values(p, name)
    if (p < 0).any():
        raise ValueError(f"{name} must be non-negative (a probability vector)")
    if abs(p.sum() - 1.0) > 1e-6:
        raise ValueError(f"{name} must sum to 1 (a probability vector); sums to {p.sum():.6g}")
    return p


def _check_pair(p, q) -> tuple[np.ndarray, np.ndarray]:
    p, q = _check_probs(p, "p"), _check_probs(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same number of bins; got {p.size} and {q.size}")
    return p, q


def total_variation(p, q) -> float:
    """``TV(p, q) = 0.5 * sum |p - q|`` over all bins, overflow bins included; in ``[0, 1]`` (Chapter 1)."""
    p, q = _check_pair(p, q)
    return float(0.5 * np.abs(p - q).sum())


def jensen_shannon(p, q) -> float:
    """Jensen-Shannon divergence in bits (base 2), in ``[0, 1]``; symmetric (Chapter 1).

    This is the divergence, not its square root (scipy's ``jensenshannon`` returns the root).
    """
    p, q = _check_pair(p, q)
    m = 0.5 * (p + q)

    def kl(a):
        nz = a > 0  # 0 log 0 = 0; where a > 0, m > 0 too
        return np.sum(a[nz] * np.log2(a[nz] / m[nz]))

    return float(min(max(0.5 * kl(p) + 0.5 * kl(q), 0.0), 1.0))


def shift(p, q) -> np.ndarray:
    """Signed per-bin shift ``dq = q - p`` (Chapter 1): positive where the model puts too much mass."""
    p, q = _check_pair(p, q)
    return q - p


def _finite(values, name: str) -> np.ndarray:
    v = check_values(values, name, allow_nan=True)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError(f"{name} has no finite values (every recovery failed)")
    return v


def wasserstein1(a, b) -> float:
    """Wasserstein-1 distance between two samples of values (Chapter 1).

    Computed on the finite values of each (``NaN`` marks failed recoveries, which the
    histogram reports separately), with ``scipy.stats.wasserstein_distance``.
    """
    return float(_wasserstein_distance(_finite(a, "a"), _finite(b, "b")))


def _prior_quantile(prior, u: np.ndarray, grid: int = 4097) -> np.ndarray:
    c = np.linspace(prior.lo, prior.hi, grid)
    return np.interp(u, prior.cdf(c), c)


def wasserstein_to_prior(values, prior) -> float:
    """Wasserstein-1 between the finite ``values`` and the prior itself (not a sample of it).

    Introduced in Chapter 1. Uses ``W1 = int_0^1 |F_q^-1(u) - F_p^-1(u)| du`` with the midpoint
    rule on the sorted values, so the only sampling noise is the model's own.
    """
    prior = _as_prior(prior)
    v = np.sort(_finite(values, "values"))
    u = (np.arange(v.size) + 0.5) / v.size
    return float(np.mean(np.abs(v - _prior_quantile(prior, u))))


def prior_mean(prior) -> float:
    """Mean of the prior, ``hi - int_lo^hi F(c) dc`` (Chapter 6, mean-shift sign)."""
    prior = _as_prior(prior)
    c = np.linspace(prior.lo, prior.hi, 4097)
    f = prior.cdf(c)
    return float(prior.hi - np.sum(0.5 * (f[1:] + f[:-1]) * np.diff(c)))


def _null_probs(prior, n: int, bins: int, n_rep: int, rng) -> np.ndarray:
    # The histogram of N i.i.d. prior draws is Multinomial(N, p): drawing it directly is exact and fast.
    p = prior_probs(prior, bins)
    return rng.multinomial(n, p, size=n_rep) / n


def null_tv(prior, n: int, bins: int = 20, n_rep: int = 500, rng=None) -> np.ndarray:
    """Finite-sample null: ``TV(p, q_N)`` for ``n_rep`` sets of ``n`` fresh prior samples (Chapter 1)."""
    prior = _as_prior(prior)
    n = check_positive_int(n, "n")
    n_rep = check_positive_int(n_rep, "n_rep")
    p = prior_probs(prior, bins)
    return 0.5 * np.abs(_null_probs(prior, n, bins, n_rep, as_rng(rng)) - p).sum(axis=1)


def null_quantile(prior, n: int, bins: int = 20, q: float = 0.99, n_rep: int = 500, rng=None) -> float:
    """The ``q`` quantile (default 99th percentile) of :func:`null_tv` (Chapter 1)."""
    if not 0.0 < float(q) < 1.0:
        raise ValueError(f"q must be a quantile level in (0, 1); got {q!r}")
    return float(np.quantile(null_tv(prior, n, bins, n_rep, rng), q))


def null_band(prior, n: int, bins: int = 20, level: float = 0.99, n_rep: int = 500, rng=None):
    """Per-bin envelope ``(lower, upper)`` of ``q_N`` under the null, each of shape ``(bins + 2,)`` (Chapter 1).

    A bin of a recovered histogram outside this band is unusual for ``n`` true samples.
    """
    prior = _as_prior(prior)
    n = check_positive_int(n, "n")
    n_rep = check_positive_int(n_rep, "n_rep")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    draws = _null_probs(prior, n, bins, n_rep, as_rng(rng))
    tail = 0.5 * (1.0 - level)
    return np.quantile(draws, tail, axis=0), np.quantile(draws, 1.0 - tail, axis=0)


def bootstrap_ci(values, statistic, n_boot: int = 200, level: float = 0.95, rng=None) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``statistic(values)`` (Chapter 1).

    ``values`` may contain ``NaN`` (failed recoveries): they are resampled like any other value,
    so the interval also reflects how many failures a resample happens to draw.
    """
    values = check_values(values, "values", allow_nan=True)
    n_boot = check_positive_int(n_boot, "n_boot")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    if not callable(statistic):
        raise ValueError("statistic must be a callable taking a 1-D array of values")
    rng = as_rng(rng)
    boot = np.array([statistic(values[rng.integers(0, values.size, values.size)]) for _ in range(n_boot)], dtype=np.float64)
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        return (np.nan, np.nan)
    tail = 0.5 * (1.0 - level)
    lo, hi = np.quantile(boot, [tail, 1.0 - tail])
    return float(lo), float(hi)


@dataclass
class DriftReport:
    """One look at a recovered distribution against its prior (Chapter 1).

    Every headline figure comes with its reference: ``tv`` with a bootstrap interval and the
    null's 99th percentile for the same ``n``; ``significant`` is ``tv > null_tv99``.
    ``n`` counts all values, ``n_failed`` those whose recovery failed.
    Near zero drift the bootstrap interval of ``tv`` sits above the truth (``|.|`` biases TV
    upward): judge detectability by the null, and use the interval to compare large drifts.
    """

    tv: float
    tv_ci: tuple
    w1: float
    w1_ci: tuple
    js: float
    shift: np.ndarray
    out_of_support: float
    n_failed: int
    n: int
    null_tv99: float
    histogram: Histogram = field(repr=False)
    prior_probs: np.ndarray = field(repr=False)
    null_band: tuple = field(repr=False)
    predicted: Histogram | None = field(default=None, repr=False)
    predicted_tv: float | None = None
    failure_counts: dict | None = None

    @property
    def significant(self) -> bool:
        return bool(self.tv > self.null_tv99)

    @property
    def lo(self) -> float:
        return float(self.histogram.edges[0])

    @property
    def hi(self) -> float:
        return float(self.histogram.edges[-1])

    @property
    def verdict(self) -> str:
        if self.significant:
            return f"drift: TV is {self.tv / max(self.null_tv99, 1e-12):.1f}x the null's 99th percentile"
        return "no drift detectable: TV within the finite-sample null"

    def __str__(self) -> str:
        pct = 100.0 * self.n_failed / self.n
        reasons = ""
        if self.failure_counts:
            reasons = " (" + ", ".join(f"{k}: {v}" for k, v in self.failure_counts.items()) + ")"
        lines = [
            f"drift report on [{self.lo:g}, {self.hi:g}], {self.histogram.bins} bins: n={self.n}, failed={self.n_failed} ({pct:.2g}%){reasons}",
            f"  TV  {self.tv:.4f} [{self.tv_ci[0]:.4f}, {self.tv_ci[1]:.4f}]  vs null99 {self.null_tv99:.4f}"
            + ("" if self.significant else "  (near zero drift the bootstrap interval sits high)"),
            f"  W1  {self.w1:.4g} [{self.w1_ci[0]:.4g}, {self.w1_ci[1]:.4g}]   JS {self.js:.4f} bits   out of support {100 * self.out_of_support:.2f}%",
        ]
        if self.predicted is not None:
            lines.append(f"  predicted (n={self.predicted.n_total}, failed={self.predicted.n_failed}): "
                         f"TV(p, q_hat) {self.predicted_tv:.4f}, out of support {100 * self.predicted.out_of_support:.2f}%")
        lines.append(f"  verdict: {self.verdict}")
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle):  # IPython shows the readable block, not the dataclass repr
        printer.text(str(self))

    def plot(self, ax=None, title: str | None = None):
        """Bars of ``q`` against the prior, the null band, the prediction if any (see :mod:`physmis_edu.plotting`)."""
        from .plotting import plot_drift

        return plot_drift(self, ax=ax, title=title)


def drift_report(values, prior, bins: int = 20, predicted=None, n_null: int = 500, n_boot: int = 200,
                 rng=None, failure_counts: dict | None = None) -> DriftReport:
    """Compare recovered ``values`` with the prior: TV, W1, JS, shifts, null and bootstrap (Chapter 1).

    ``values``: recovered controls (``NaN`` for failures; a ``Recovery`` is accepted too, and then
    its failure reasons are reported). ``predicted``: optional recovered values of a kernel
    prediction ``q_hat`` (Chapter 6), shown beside ``q``.
    The null uses ``N`` = the number of finite values, the sample size the histogram is normalised by.
    """
    if hasattr(values, "values") and hasattr(values, "failure_counts"):
        failure_counts = values.failure_counts() if failure_counts is None else failure_counts
        values = values.values
    prior = _as_prior(prior)
    values = check_values(values, "values", allow_nan=True)
    n_null = check_positive_int(n_null, "n_null")
    n_boot = check_positive_int(n_boot, "n_boot")
    rng = as_rng(rng)
    hist = recovered_histogram(values, prior.lo, prior.hi, bins)
    if hist.n_finite == 0:
        raise ValueError(f"all {hist.n_total} recoveries failed; there is no recovered distribution to compare")
    p = prior_probs(prior, bins)
    q = hist.probs

    def tv_of(v):
        h = recovered_histogram(v, prior.lo, prior.hi, bins)
        return np.nan if h.n_finite == 0 else 0.5 * np.abs(h.probs - p).sum()

    def w1_of(v):
        return wasserstein_to_prior(v, prior) if np.isfinite(v).any() else np.nan

    null_draws = _null_probs(prior, hist.n_finite, bins, n_null, rng)
    null_tvs = 0.5 * np.abs(null_draws - p).sum(axis=1)
    band = (np.quantile(null_draws, 0.005, axis=0), np.quantile(null_draws, 0.995, axis=0))
    pred_hist, pred_tv = None, None
    if predicted is not None:
        pred_values = check_values(getattr(predicted, "values", predicted), "predicted", allow_nan=True)
        pred_hist = recovered_histogram(pred_values, prior.lo, prior.hi, bins)
        pred_tv = float(0.5 * np.abs(pred_hist.probs - p).sum()) if pred_hist.n_finite else float("nan")
    return DriftReport(
        tv=total_variation(p, q), tv_ci=bootstrap_ci(values, tv_of, n_boot, rng=rng),
        w1=w1_of(values), w1_ci=bootstrap_ci(values, w1_of, n_boot, rng=rng),
        js=jensen_shannon(p, q), shift=q - p, out_of_support=hist.out_of_support,
        n_failed=hist.n_failed, n=hist.n_total, null_tv99=float(np.quantile(null_tvs, 0.99)),
        histogram=hist, prior_probs=p, null_band=band, predicted=pred_hist, predicted_tv=pred_tv,
        failure_counts=failure_counts,
    )
