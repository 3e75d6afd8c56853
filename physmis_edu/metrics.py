"""Measuring misalignment honestly: recovered histograms, distances, the finite-sample null.

Introduced in Chapter 1 (quiet failure) and used in every later chapter.
A recovered distribution ``q`` is a histogram over ``B`` equal bins on ``[lo, hi]`` plus one
overflow bin on each side; failed recoveries (``NaN``) are counted and reported, never dropped
silently. A drift is real only when it exceeds the finite-sample null: the distribution of
``TV(p, q_N)`` for ``N`` fresh true samples, with ``N`` the model's own sample size.
"""

from __future__ import annotations

import textwrap

from dataclasses import dataclass, field

import numpy as np
from ._validation import as_rng, check_level, check_positive_int, check_range, check_values

__all__ = [
    "Histogram", "recovered_histogram", "prior_probs", "bin_edges",
    "total_variation", "jensen_shannon", "wasserstein1", "wasserstein_to_prior", "shift",
    "null_tv", "null_quantile", "null_band", "bootstrap_ci", "UndefinedIntervalError",
    "prior_mean", "tv_with_failures",
    "DriftReport", "drift_report",
    "as_prior", "pearson", "spearman", "wasserstein_distance",
]


def wasserstein_distance(a, b) -> float:
    """Wasserstein-1 distance between two samples of values, as ``scipy.stats`` computes it.

    Introduced in Chapter 6 (the loss of ``kernels.calibrate``). No ``NaN`` handling: for
    recovered values, which mark failures as ``NaN``, use :func:`wasserstein1` (Chapter 1).
    """
    # scipy.stats costs about a second to import cold; load it only when a distance is asked for.
    from scipy.stats import wasserstein_distance as _scipy_w1

    return _scipy_w1(a, b)


def as_prior(prior):
    """The ``Prior`` itself, or the one a ``Task`` carries (Chapter 1); else ``ValueError``."""
    if hasattr(prior, "bin_probs") and hasattr(prior, "lo"):
        return prior
    inner = getattr(prior, "prior", None)
    if inner is not None and hasattr(inner, "bin_probs"):
        return inner
    raise ValueError(f"prior must be a physmis_edu.tasks.Prior (or a Task); "
                     f"got {type(prior).__name__}")


def _paired(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = check_values(a, "a", allow_nan=True)
    b = check_values(b, "b", allow_nan=True)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same length; got {a.size} and {b.size}")
    return a, b


def pearson(a, b) -> float:
    """Pearson correlation of two equally long 1-D arrays; ``NaN`` when either is constant.

    Introduced in Chapter 6, where it scores the per-bin shifts of a kernel's prediction
    against a model's (``kernels.agreement``).
    """
    a, b = _paired(a, b)
    if np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def spearman(a, b) -> float:
    """Spearman rank correlation of two equally long 1-D arrays; ``NaN`` when either is constant.

    Introduced in Chapter 6 (``kernels.agreement``).
    """
    a, b = _paired(a, b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    from scipy.stats import spearmanr

    return float(spearmanr(a, b)[0])


def bin_edges(lo: float, hi: float, bins: int = 20) -> np.ndarray:
    """The ``bins + 1`` equal-width edges on ``[lo, hi]`` (Chapter 1)."""
    lo, hi = check_range(lo, hi, "histogram range (lo, hi)")
    bins = check_positive_int(bins, "bins")
    return np.linspace(lo, hi, bins + 1)


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Index into ``[underflow, bin_1..bin_B, overflow]`` for finite ``values``;
    ``hi`` itself is in the last bin.
    """
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
        return (f"Histogram(bins={self.bins} on [{self.edges[0]:g}, {self.edges[-1]:g}], "
                f"n={self.n_total}, failed={self.n_failed}, "
                f"out_of_support={self.out_of_support:.3g})")


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
    """The prior's probability per bin, shape ``(bins + 2,)``,
    zero in the overflow bins (Chapter 1).
    """
    prior = as_prior(prior)
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
    """``TV(p, q) = 0.5 * sum |p - q|`` over all bins, overflow bins included;
    in ``[0, 1]`` (Chapter 1).
    """
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
    """Signed per-bin shift ``dq = q - p`` (Chapter 1):
    positive where the model puts too much mass.
    """
    p, q = _check_pair(p, q)
    return q - p


def _finite_mean(values) -> float | None:
    """The mean of the finite entries (``None`` and ``NaN`` left out), ``None`` if none: how
    scores that a seed could not give are averaged over seeds (Chapters 10 and 11)."""
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else None


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
    return float(wasserstein_distance(_finite(a, "a"), _finite(b, "b")))


def _prior_quantile(prior, u: np.ndarray, grid: int = 4097) -> np.ndarray:
    c = np.linspace(prior.lo, prior.hi, grid)
    return np.interp(u, prior.cdf(c), c)


def wasserstein_to_prior(values, prior) -> float:
    """Wasserstein-1 between the finite ``values`` and the prior itself (not a sample of it).

    Introduced in Chapter 1. Uses ``W1 = int_0^1 |F_q^-1(u) - F_p^-1(u)| du`` with the midpoint
    rule on the sorted values, so the only sampling noise is the model's own.
    """
    prior = as_prior(prior)
    v = np.sort(_finite(values, "values"))
    u = (np.arange(v.size) + 0.5) / v.size
    return float(np.mean(np.abs(v - _prior_quantile(prior, u))))


def prior_mean(prior) -> float:
    """Mean of the prior, ``hi - int_lo^hi F(c) dc`` (Chapter 6, mean-shift sign)."""
    prior = as_prior(prior)
    c = np.linspace(prior.lo, prior.hi, 4097)
    f = prior.cdf(c)
    return float(prior.hi - np.sum(0.5 * (f[1:] + f[:-1]) * np.diff(c)))


def _null_probs(prior, n: int, bins: int, n_rep: int, rng) -> np.ndarray:
    # The histogram of N i.i.d. prior draws is Multinomial(N, p):
    # drawing it directly is exact and fast.
    p = prior_probs(prior, bins)
    return rng.multinomial(n, p, size=n_rep) / n


def null_tv(prior, n: int, bins: int = 20, n_rep: int = 500, rng=None) -> np.ndarray:
    """Finite-sample null: ``TV(p, q_N)`` for ``n_rep`` sets of ``n`` fresh
    prior samples (Chapter 1).
    """
    prior = as_prior(prior)
    n = check_positive_int(n, "n")
    n_rep = check_positive_int(n_rep, "n_rep")
    p = prior_probs(prior, bins)
    return 0.5 * np.abs(_null_probs(prior, n, bins, n_rep, as_rng(rng)) - p).sum(axis=1)


def null_quantile(prior, n: int, bins: int = 20, q: float = 0.99, n_rep: int = 500,
                  rng=None) -> float:
    """The ``q`` quantile (default 99th percentile) of :func:`null_tv` (Chapter 1)."""
    q = check_level(q, "q (the quantile level)")
    return float(np.quantile(null_tv(prior, n, bins, n_rep, rng), q))


def null_band(prior, n: int, bins: int = 20, level: float = 0.99, n_rep: int = 500, rng=None):
    """Per-bin envelope ``(lower, upper)`` of ``q_N`` under the null,
    each of shape ``(bins + 2,)`` (Chapter 1).

    A bin of a recovered histogram outside this band is unusual for ``n`` true samples.
    """
    prior = as_prior(prior)
    n = check_positive_int(n, "n")
    n_rep = check_positive_int(n_rep, "n_rep")
    level = check_level(level, "level")
    draws = _null_probs(prior, n, bins, n_rep, as_rng(rng))
    tail = 0.5 * (1.0 - level)
    return np.quantile(draws, tail, axis=0), np.quantile(draws, 1.0 - tail, axis=0)


class UndefinedIntervalError(ValueError):
    """:func:`bootstrap_ci` cannot give an honest interval for these values (Chapter 1).

    Raised when the statistic is not finite on some resamples, or when the BCa bias correction is
    infinite because the estimate lies outside every resample's value.
    """


_CI_METHODS = ("percentile", "BCa")


def _jackknife(values: np.ndarray, statistic, groups: int = 200) -> np.ndarray:
    """Delete-a-group jackknife values of ``statistic`` (at most ``groups`` evaluations).

    The groups interleave the indices (``i % groups``); the BCa acceleration is a ratio of sums of
    powers of the jackknife deviations, which a grouped jackknife estimates without bias.
    """
    g = min(values.size, groups)
    label = np.arange(values.size) % g
    return np.array([statistic(values[label != j]) for j in range(g)], dtype=np.float64)


def bootstrap_ci(values, statistic, n_boot: int = 200, level: float = 0.95, rng=None,
                 method: str = "percentile") -> tuple[float, float]:
    """Bootstrap confidence interval of ``statistic(values)`` (Chapter 1).

    ``values`` may contain ``NaN`` (failed recoveries): they are resampled like any other value,
    so the interval also reflects how many failures a resample happens to draw.
    ``method``: ``"percentile"`` (the quantiles of the resampled statistic) or ``"BCa"`` (bias
    corrected and accelerated; Efron and Tibshirani 1994, ch. 14). The percentile interval is
    biased for a statistic that is itself biased, such as a total variation distance near zero,
    which is always positive: its interval can exclude its own estimate. BCa corrects that; the
    resamples are the same for both methods (the same ``rng`` stream).

    Raises :class:`UndefinedIntervalError` (a ``ValueError``) when the statistic is not finite on
    the values or on some resamples (dropping those would condition the interval on not drawing
    them), and for BCa when the estimate lies outside every resample's value (the bias
    correction is then infinite) or outside the BCa interval (the correction asks for quantiles
    that ``n_boot`` resamples cannot resolve). Either way the statistic sits near a floor, and
    no bootstrap interval of it is a 95% confidence interval.
    """
    values = check_values(values, "values", allow_nan=True)
    n_boot = check_positive_int(n_boot, "n_boot")
    level = check_level(level, "level")
    if not callable(statistic):
        raise ValueError(f"statistic must be a callable taking a 1-D array of values; "
                         f"got {statistic!r}")
    if method not in _CI_METHODS:
        raise ValueError(f"method must be one of {_CI_METHODS}; got {method!r}")
    estimate = _scalar_statistic(statistic, values, "on the values themselves")
    rng = as_rng(rng)
    boot = np.array([statistic(values[rng.integers(0, values.size, values.size)])
                     for _ in range(n_boot)], dtype=np.float64)
    bad = int((~np.isfinite(boot)).sum())
    if bad:
        raise UndefinedIntervalError(
            f"statistic was not finite on {bad} of {n_boot} resamples (e.g. a resample in which "
            "every recovery failed); an interval over the others would be conditioned on not "
            "drawing them")
    tail = 0.5 * (1.0 - level)
    if method == "percentile":
        lo, hi = np.quantile(boot, [tail, 1.0 - tail])
        return float(lo), float(hi)
    from scipy.special import ndtr, ndtri

    below = (np.sum(boot < estimate) + 0.5 * np.sum(boot == estimate)) / n_boot
    if below in (0.0, 1.0):
        side = "below" if below == 0.0 else "above"
        raise UndefinedIntervalError(
            f"the estimate {estimate:.4g} lies {side} all {n_boot} resampled values: the BCa bias "
            "correction is infinite (a statistic at its floor, such as TV near zero drift)")
    z0 = ndtri(below)
    jack = _jackknife(values, statistic)
    if not np.isfinite(jack).all():
        raise UndefinedIntervalError("statistic was not finite on a jackknife subsample")
    dev = jack.mean() - jack
    denom = 6.0 * np.sum(dev ** 2) ** 1.5
    accel = float(np.sum(dev ** 3) / denom) if denom > 0 else 0.0
    z = ndtri(np.array([tail, 1.0 - tail]))
    alpha = ndtr(z0 + (z0 + z) / (1.0 - accel * (z0 + z)))
    lo, hi = np.quantile(boot, alpha)
    if not lo <= estimate <= hi:
        raise UndefinedIntervalError(
            f"the BCa interval [{lo:.4g}, {hi:.4g}] excludes the estimate {estimate:.4g}: "
            f"its bias correction (z0 = {z0:.2f}) needs the {alpha[0]:.2g} and "
            f"{alpha[1]:.2g} quantiles, beyond what {n_boot} resamples resolve (a statistic near "
            "its floor, such as TV near zero drift)")
    return float(lo), float(hi)


def _scalar_statistic(statistic, values: np.ndarray, where: str) -> float:
    out = statistic(values)
    try:
        out = float(out)
    except (TypeError, ValueError) as err:
        raise ValueError(f"statistic must return one number; "
                         f"got {type(out).__name__} {where}") from err
    if not np.isfinite(out):
        raise UndefinedIntervalError(f"statistic returned {out} {where}; "
                                     "there is nothing to bound")
    return out


def tv_with_failures(p, histogram: Histogram) -> float:
    """TV with failed recoveries counted as mass in the wrong place (Chapter 1).

    An extra bin holds the failures: the prior puts no mass there, the recovered distribution puts
    ``n_failed / n_total`` there and spreads the rest as ``histogram.probs``. With no failures this
    equals ``total_variation(p, histogram.probs)``; with failures it is larger, and it is 1 when
    every recovery failed.
    """
    p = _check_probs(p, "p")
    if not isinstance(histogram, Histogram):
        raise ValueError(f"histogram must be a Histogram; got {type(histogram).__name__}")
    if p.shape != histogram.counts.shape:
        raise ValueError(f"p must have {histogram.counts.size} bins like the histogram; "
                         f"got {p.size}")
    q_all = histogram.counts / histogram.n_total
    return float(0.5 * (np.abs(p - q_all).sum() + histogram.failed_fraction))


@dataclass
class DriftReport:
    """One look at a recovered distribution against its prior (Chapter 1).

    Every headline figure comes with its reference: ``tv`` with a bootstrap interval and the
    null's 99th percentile for the same ``n``.
    ``n`` counts all values, ``n_failed`` those whose recovery failed.
    ``tv``, ``w1``, ``js`` and ``shift`` describe the finite values; ``tv_failed``
    (:func:`tv_with_failures`) also counts every failure as mass in the wrong place, and the
    verdict (``significant``: ``tv_failed > null_tv99``) uses it, so a model whose recoveries
    mostly fail cannot pass as drift-free. Without failures ``tv_failed == tv``.
    The intervals are BCa bootstrap intervals (:func:`bootstrap_ci`): the percentile interval of
    TV sits above the truth near zero drift and can exclude its own estimate. Where no honest
    interval exists (the estimate below every resample, as for TV at its noise floor) the interval
    is ``(nan, nan)`` and ``ci_notes`` says why; detectability is judged by the null anyway.
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
    tv_failed: float | None = None
    ci_notes: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.tv_failed is None:
            self.tv_failed = tv_with_failures(self.prior_probs, self.histogram)

    @property
    def significant(self) -> bool:
        return bool(self.tv_failed > self.null_tv99)

    @property
    def lo(self) -> float:
        return float(self.histogram.edges[0])

    @property
    def hi(self) -> float:
        return float(self.histogram.edges[-1])

    @property
    def failed_fraction(self) -> float:
        return self.n_failed / self.n

    @property
    def verdict(self) -> str:
        failed = ""
        if self.n_failed:
            failed = (f"; {self.n_failed} of {self.n} recoveries failed "
                      f"({self.failed_fraction:.1%}), counted as misplaced mass "
                      f"(TV with failures {self.tv_failed:.3f})")
        if not self.significant:
            return "no drift detectable: TV within the finite-sample null" + failed
        if self.tv <= self.null_tv99:
            return ("drift from failed recoveries: the finite values are within the null, but "
                    f"{self.n_failed} of {self.n} recoveries failed ({self.failed_fraction:.1%}); "
                    f"TV with failures is {self.tv_failed / max(self.null_tv99, 1e-12):.1f}x "
                    "the null's 99th percentile")
        return (f"drift: TV is {self.tv_failed / max(self.null_tv99, 1e-12):.1f}x "
                "the null's 99th percentile" + failed)

    @staticmethod
    def _interval(ci, fmt: str) -> str:
        if not np.isfinite(ci).all():
            return "[no interval]"
        return f"[{ci[0]:{fmt}}, {ci[1]:{fmt}}]"

    def __str__(self) -> str:
        pct = 100.0 * self.n_failed / self.n
        reasons = ""
        if self.failure_counts:
            reasons = " (" + ", ".join(f"{k}: {v}" for k, v in self.failure_counts.items()) + ")"
        lines = [
            f"drift report on [{self.lo:g}, {self.hi:g}], {self.histogram.bins} bins: n={self.n}, "
            f"failed={self.n_failed} ({pct:.2g}%){reasons}",
            f"  TV  {self.tv:.4f} {self._interval(self.tv_ci, '.4f')} (95% BCa)  "
            f"vs null99 {self.null_tv99:.4f}",
            f"  W1  {self.w1:.4g} {self._interval(self.w1_ci, '.4g')}   JS {self.js:.4f} bits   "
            f"out of support {100 * self.out_of_support:.2f}%",
        ]
        for name, note in self.ci_notes.items():
            lines.append(f"  no {name} interval: {note}")
        if self.predicted is not None:
            lines.append(f"  predicted (n={self.predicted.n_total}, "
                         f"failed={self.predicted.n_failed}): "
                         f"TV(p, q_hat) {self.predicted_tv:.4f}, "
                         f"out of support {100 * self.predicted.out_of_support:.2f}%")
        lines.append(f"  verdict: {self.verdict}")
        # Wrapped so that no printed line runs off a book page (about 88 characters).
        return "\n".join(textwrap.fill(line, 88, subsequent_indent="      ")
                         for line in lines)

    # IPython shows the readable block, not the dataclass repr
    def _repr_pretty_(self, printer, cycle):
        printer.text(str(self))

    def plot(self, ax=None, title: str | None = None):
        """Bars of ``q`` against the prior, the null band, the prediction if any (Chapter 1).

        A shortcut for :func:`physmis_edu.plotting.plot_drift`, which the chapters call as
        ``report.plot()``. The import is deferred to the call on purpose: ``plotting`` depends on
        this module, and this module loads nothing of ``plotting`` (nor matplotlib) until a
        report is drawn.
        """
        from .plotting import plot_drift

        return plot_drift(self, ax=ax, title=title)


def drift_report(values, prior, bins: int = 20, predicted=None, n_null: int = 500,
                 n_boot: int = 200, rng=None, failure_counts: dict | None = None) -> DriftReport:
    """Compare recovered ``values`` with the prior: TV, W1, JS, shifts,
    null and bootstrap (Chapter 1).

    ``values``: recovered controls (``NaN`` for failures; a ``Recovery`` is accepted too, and then
    its failure reasons are reported). ``predicted``: optional recovered values of a kernel
    prediction ``q_hat`` (Chapter 6), shown beside ``q``.
    The null uses ``N`` = the number of finite values,
    the sample size the histogram is normalised by.
    Failed recoveries count against the verdict (see :class:`DriftReport`).
    """
    if hasattr(values, "values") and hasattr(values, "failure_counts"):
        failure_counts = values.failure_counts() if failure_counts is None else failure_counts
        values = values.values
    prior = as_prior(prior)
    values = check_values(values, "values", allow_nan=True)
    n_null = check_positive_int(n_null, "n_null")
    n_boot = check_positive_int(n_boot, "n_boot")
    rng = as_rng(rng)
    hist = recovered_histogram(values, prior.lo, prior.hi, bins)
    if hist.n_finite == 0:
        raise ValueError(f"all {hist.n_total} recoveries failed; "
                         "there is no recovered distribution to compare")
    p = prior_probs(prior, bins)
    q = hist.probs

    def tv_of(v):
        h = recovered_histogram(v, prior.lo, prior.hi, bins)
        return np.nan if h.n_finite == 0 else 0.5 * np.abs(h.probs - p).sum()

    def w1_of(v):
        return wasserstein_to_prior(v, prior) if np.isfinite(v).any() else np.nan

    notes = {}

    def interval(name, statistic):
        try:
            return bootstrap_ci(values, statistic, n_boot, rng=rng, method="BCa")
        except UndefinedIntervalError as err:
            notes[name] = str(err)
            return (float("nan"), float("nan"))

    null_draws = _null_probs(prior, hist.n_finite, bins, n_null, rng)
    null_tvs = 0.5 * np.abs(null_draws - p).sum(axis=1)
    band = (np.quantile(null_draws, 0.005, axis=0), np.quantile(null_draws, 0.995, axis=0))
    pred_hist, pred_tv = None, None
    if predicted is not None:
        pred_values = check_values(getattr(predicted, "values", predicted), "predicted",
                                   allow_nan=True)
        pred_hist = recovered_histogram(pred_values, prior.lo, prior.hi, bins)
        pred_tv = (float(0.5 * np.abs(pred_hist.probs - p).sum()) if pred_hist.n_finite
                   else float("nan"))
    return DriftReport(
        tv=total_variation(p, q), tv_ci=interval("TV", tv_of),
        w1=w1_of(values), w1_ci=interval("W1", w1_of),
        js=jensen_shannon(p, q), shift=q - p, out_of_support=hist.out_of_support,
        n_failed=hist.n_failed, n=hist.n_total, null_tv99=float(np.quantile(null_tvs, 0.99)),
        histogram=hist, prior_probs=p, null_band=band, predicted=pred_hist, predicted_tv=pred_tv,
        failure_counts=failure_counts, ci_notes=notes,
    )
