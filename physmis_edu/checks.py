"""Self-checking code exercises: immediate feedback on a function the reader writes.

Introduced in Chapter 1 and used in the exercise sections of Chapters 1 to 12, two per
chapter (those of Chapters 5 to 12 mostly read runs shipped in the store, :mod:`physmis_edu.zoo`,
or the scores computed from them).
A code exercise asks for one function (``overflow_mass``, ``fit_growth_rate`` ...) and ends
with ``check("ch02-ex-overflow", overflow_mass)``, which calls the reader's function on a few
inputs, an edge case among them, compares each answer with a reference that the checker
computes with this library, and returns a :class:`Feedback`: what is right, what is off, and
a hint. Comparisons use tolerances, never bitwise equality: a correct answer may sum in
another order or draw other random numbers, and a Monte Carlo answer is compared within a
few of its standard errors.

Every checker runs in well under a few seconds on a CPU and needs only NumPy and the
library (no torch, no Jupyter). ``CHECKERS`` maps each exercise's label to its
:class:`Checker`; :func:`check` is the one entry point.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["Feedback", "Checker", "CHECKERS", "check"]

# Printed feedback is read in a narrow notebook column.
_WIDTH = 86


@dataclass
class Feedback:
    """What :func:`check` found: ``passed``, the ``right`` and ``off`` findings, a ``hint``.

    Introduced in Chapter 1. Returned as a cell's last expression it shows as Markdown in
    a notebook and as plain text (lines under 88 characters) elsewhere; ``print`` gives the
    plain text. ``hint`` is empty when every check passed.
    """

    passed: bool
    right: list[str] = field(default_factory=list)
    off: list[str] = field(default_factory=list)
    hint: str = ""
    label: str = ""

    def _title(self) -> str:
        total = len(self.right) + len(self.off)
        where = f" ({self.label})" if self.label else ""
        if self.passed:
            return f"All {total} checks passed{where}."
        return f"{len(self.off)} of {total} checks are off{where}."

    def __str__(self) -> str:
        lines = textwrap.wrap(self._title(), _WIDTH)
        for mark, items in (("ok", self.right), ("off", self.off)):
            for item in items:
                lines += textwrap.wrap(item, _WIDTH, initial_indent=f"  {mark:<3} ",
                                       subsequent_indent="      ")
        if self.hint:
            lines += textwrap.wrap(f"Hint: {self.hint}", _WIDTH, subsequent_indent="      ")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_markdown_(self) -> str:
        head = ("**Passed.** " if self.passed else "**Not yet.** ") + self._title()
        items = [f"- ✔ {item}" for item in self.right] + [f"- ✘ {item}" for item in self.off]
        text = head + "\n\n" + "\n".join(items)
        return text + (f"\n\n**Hint:** {self.hint}" if self.hint else "")


@dataclass(frozen=True)
class Checker:
    """One exercise's check: the function the reader writes (``name``) and how it is tested.

    Introduced in Chapter 1. ``run(answer, report)`` calls ``answer`` on the checker's inputs
    and records each finding in ``report``; ``hint`` is shown when something is off and no
    finding has a more specific hint; ``chapter`` is the chapter that sets the exercise.
    """

    label: str
    name: str
    chapter: int
    run: Callable
    hint: str
    signature: str = ""

    def __call__(self, answer) -> Feedback:
        return check(self.label, answer)


CHECKERS: dict[str, Checker] = {}


def _checker(label: str, name: str, chapter: int, signature: str, hint: str):
    """Register the decorated function as the checker of exercise ``label``."""
    def register(run):
        CHECKERS[label] = Checker(label, name, chapter, run, hint, signature)
        return run
    return register


def check(label: str, answer) -> Feedback:
    """Check the reader's function ``answer`` for the code exercise ``label``.

    Introduced in Chapter 1. Returns a :class:`Feedback`. A ``NotImplementedError`` raised by
    ``answer`` (the exercise's unfinished stub) propagates, so the stub's cell fails as it
    should; any other exception it raises is reported as something off. An unknown ``label``
    raises ``KeyError`` listing the known labels; a non-callable ``answer`` raises
    ``TypeError``.
    """
    if not isinstance(label, str) or label not in CHECKERS:
        known = ", ".join(sorted(CHECKERS))
        raise KeyError(f"label {label!r} is not a code exercise with a checker; "
                       f"known labels: {known}")
    checker = CHECKERS[label]
    if not callable(answer):
        raise TypeError(f"answer must be the function {checker.name} you wrote "
                        f"(a callable); got {type(answer).__name__}")
    report = _Report(checker.name)
    checker.run(answer, report)
    passed = not report.off
    hint = "" if passed else (report.hints[0] if report.hints else checker.hint)
    return Feedback(passed, report.right, report.off, hint, label)


# --- recording findings -----------------------------------------------------------------------

class _Failed(Exception):
    """The reader's function raised (already reported); skip the rest of that case."""


def _fmt(value) -> str:
    """A short readable form of a number or a small array."""
    arr = np.asarray(value, dtype=float) if _numeric(value) else None
    if arr is None:
        return repr(value)[:60]
    if arr.ndim == 0:
        return f"{float(arr):.4g}"
    shown = ", ".join(f"{v:.4g}" for v in arr.ravel()[:4])
    return f"[{shown}{', ...' if arr.size > 4 else ''}] (shape {arr.shape})"


def _numeric(value) -> bool:
    """Whether ``value`` is a number or an array of numbers (not a string, not None)."""
    if value is None:
        return False
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):  # ragged sequences
        return False
    return arr.dtype.kind in "biuf"


class _Report:
    """Collects the findings of one check."""

    def __init__(self, name: str):
        self.name = name
        self.right: list[str] = []
        self.off: list[str] = []
        self.hints: list[str] = []

    def ok(self, text: str) -> None:
        self.right.append(text)

    def fail(self, text: str, hint: str | None = None) -> None:
        self.off.append(text)
        if hint:
            self.hints.append(hint)

    def call(self, answer, *args, what: str):
        """``answer(*args)``; a NotImplementedError propagates, any other error is reported."""
        try:
            return answer(*args)
        except NotImplementedError:
            raise
        except Exception as exc:  # the reader's bug, reported rather than raised
            self.fail(f"{what}: {self.name} raised {type(exc).__name__}: {exc}",
                      "read the error above; call your function on this input yourself.")
            raise _Failed from exc

    def compare(self, answer, *args, expected, what: str, rtol: float = 0.0,
                atol: float = 0.0, hint: str | None = None) -> bool:
        """Call ``answer(*args)`` and :meth:`close` its result with ``expected``; False when
        the call raised (already reported)."""
        try:
            got = self.call(answer, *args, what=what)
        except _Failed:
            return False
        return self.close(got, expected, what, rtol=rtol, atol=atol, hint=hint)

    def array(self, got, shape: tuple, what: str) -> np.ndarray:
        """``got`` as a float array of ``shape``, or a reported failure."""
        if got is None:
            self.fail(f"{what}: {self.name} returned None; expected numbers",
                      "did you forget the return statement?")
            raise _Failed
        if not _numeric(got):
            self.fail(f"{what}: expected numbers, got {type(got).__name__}",
                      "return a NumPy array (or a float) of numbers.")
            raise _Failed
        arr = np.asarray(got, dtype=float)
        if arr.shape != shape:
            self.fail(f"{what}: expected shape {shape}, got shape {arr.shape}",
                      "check which axis you reduce over and that you return one value "
                      "per trajectory (or per control).")
            raise _Failed
        return arr

    def close(self, got, expected, what: str, *, rtol: float = 0.0, atol: float = 0.0,
              hint: str | None = None) -> bool:
        """Compare ``got`` with ``expected`` within ``atol + rtol * |expected|``.

        ``NaN`` in ``expected`` marks a failed recovery: ``got`` must be ``NaN`` there too,
        and must not be ``NaN`` elsewhere. Infinite values are always off.
        """
        expected = np.asarray(expected, dtype=float)
        try:
            got = self.array(got, expected.shape, what)
        except _Failed:
            return False
        if np.isinf(got).any():
            self.fail(f"{what}: {int(np.isinf(got).sum())} infinite values",
                      "mark a failure as NaN, never as inf.")
            return False
        want_nan, got_nan = np.isnan(expected), np.isnan(got)
        if (want_nan & ~got_nan).any():
            self.fail(f"{what}: expected NaN (a failed recovery) for "
                      f"{int((want_nan & ~got_nan).sum())} entries, got numbers there",
                      "a failure is NaN, never clipped or replaced by a number: return "
                      "NaN where the formula has no valid value.")
            return False
        if (got_nan & ~want_nan).any():
            self.fail(f"{what}: NaN for {int((got_nan & ~want_nan).sum())} entries "
                      "that have a valid value", hint)
            return False
        tol = atol + rtol * np.abs(expected)
        with np.errstate(invalid="ignore"):
            good = (np.abs(got - expected) <= tol) | (want_nan & got_nan)
        if good.all():
            if expected.ndim == 0:
                self.ok(f"{what}: {_fmt(got)}, reference {_fmt(expected)} "
                        f"(tolerance {float(tol):.2g})")
            else:
                failed = f", {int(want_nan.sum())} of them NaN as expected" \
                    if want_nan.any() else ""
                self.ok(f"{what}: all {expected.size} values match the reference{failed}")
            return True
        with np.errstate(invalid="ignore"):
            excess = np.where(good, -np.inf, np.abs(got - expected) - tol)
        worst = int(np.argmax(excess))
        if expected.ndim == 0:
            text = (f"{what}: got {_fmt(got)}, expected {_fmt(expected)} "
                    f"(tolerance {float(tol):.2g})")
        else:
            text = (f"{what}: got {_fmt(got)}, expected {_fmt(expected)}; "
                    f"{int((~good).sum())} of {good.size} off (worst: "
                    f"{got.ravel()[worst]:.4g} vs {expected.ravel()[worst]:.4g})")
        factor = _factor(got[~want_nan], expected[~want_nan])
        if factor is not None:
            text += f"; your values are about {factor:.3g} times the reference"
        self.fail(text, hint)
        return False


def _factor(got: np.ndarray, expected: np.ndarray) -> float | None:
    """The common ratio ``got / expected`` when every entry is off by the same factor."""
    keep = np.abs(expected) > 1e-12
    if not keep.any():
        return None
    ratio = got[keep] / expected[keep]
    median = float(np.median(ratio))
    if not np.isfinite(median) or abs(median - 1.0) < 0.02 or median == 0.0:
        return None
    return median if np.all(np.abs(ratio - median) <= 0.02 * abs(median)) else None


def _binomial_atol(p: float, n_answer: int, n_reference: int, z: float = 5.0) -> float:
    """Tolerance for comparing two Monte Carlo fractions near ``p``: ``z`` combined standard
    errors, floored so that a fraction near 0 still gets a few counts of slack."""
    p = min(max(p, 3.0 / n_reference), 0.5)
    return z * math.sqrt(p * (1.0 - p) * (1.0 / n_answer + 1.0 / n_reference))


# --- Chapter 1: histograms with overflow bins, total variation -------------------------------

@_checker("ch01-ex-probs", "recovered_probs", 1, "recovered_probs(values, lo, hi, bins)",
          "use bins + 2 entries: [below lo, bin_1, ..., bin_B, above hi]; a value equal to "
          "hi belongs to the last inside bin; divide by the number of finite values "
          "(NaN is a failed recovery, counted apart).")
def _check_probs(answer, report: _Report) -> None:
    """Chapter 1: the recovered histogram's probabilities with overflow bins, as
    ``metrics.recovered_histogram(values, lo, hi, bins).probs``."""
    from .metrics import recovered_histogram

    rng = np.random.default_rng(0)
    spread = rng.uniform(3.5, 4.1, 2000)
    with_nan = np.concatenate([rng.uniform(3.6, 4.0, 300), [np.nan] * 20, [3.55, 4.2]])
    cases = [
        ("values on [3.5, 4.1], 20 bins on [3.6, 4]", spread, 3.6, 4.0, 20),
        ("values with NaN failures, 8 bins", with_nan, 3.6, 4.0, 8),
        ("edge case: values exactly at lo and hi, 4 bins", np.array([0.0, 1.0, 1.0, 0.5]),
         0.0, 1.0, 4),
    ]
    for what, values, lo, hi, bins in cases:
        expected = recovered_histogram(values, lo, hi, bins).probs
        report.compare(answer, values.copy(), lo, hi, bins,
                       expected=expected, what=what, atol=1e-9)


@_checker("ch01-ex-tv", "drift_tv", 1, "drift_tv(values, prior, bins)",
          "TV is half the sum of |p - q| over all bins + 2 entries: the prior puts no mass "
          "in the two overflow bins, so recovered mass outside the range counts fully.")
def _check_tv(answer, report: _Report) -> None:
    """Chapter 1: total variation between a prior's bin probabilities and a recovered
    histogram, overflow bins included, as ``metrics.total_variation``."""
    from .metrics import prior_probs, recovered_histogram, total_variation
    from .tasks import LogisticMap

    prior = LogisticMap().prior
    rng = np.random.default_rng(1)
    cases = [
        ("draws from the prior itself", prior.sample(4000, rng)),
        ("values shifted down, some below lo", prior.sample(4000, rng) - 0.05),
        ("values with NaN failures", np.concatenate([rng.uniform(3.7, 4.0, 500),
                                                     [np.nan] * 50])),
        ("edge case: every value above hi", np.full(10, 4.5)),
    ]
    for what, values in cases:
        for bins in (20, 5):
            p = prior_probs(prior, bins)
            q = recovered_histogram(values, prior.lo, prior.hi, bins).probs
            expected = total_variation(p, q)
            label = f"{what}, {bins} bins"
            report.compare(answer, values.copy(), prior, bins,
                           expected=expected, what=label, atol=1e-9)


# --- Chapter 2: the toy system --------------------------------------------------------------

@_checker("ch02-ex-overflow", "overflow_mass", 2, "overflow_mass(task, sigma, n, seed)",
          "sample n trajectories with task.sample, perturb them with Gaussian(sigma), "
          "recover with task.measure, and count the finite values below lo AND above hi, "
          "divided by the number of finite values.")
def _check_overflow(answer, report: _Report) -> None:
    """Chapter 2: the fraction of recovered controls pushed out of ``[lo, hi]`` by white
    noise, compared with the library's simulation (``kernels.predict_recovered`` and
    ``Histogram.out_of_support``) within five standard errors."""
    from .kernels import Gaussian, predict_recovered
    from .metrics import recovered_histogram
    from .tasks import InverseMap1D

    n, n_ref = 20_000, 100_000
    cases = [
        ("v = 0.8, sigma = 0.05", InverseMap1D(slope_variation=0.8), 0.05),
        ("v = -0.8 (steep ends), sigma = 0.03", InverseMap1D(slope_variation=-0.8), 0.03),
        ("edge case: sigma = 0", InverseMap1D(slope_variation=0.8), 0.0),
    ]
    for what, task, sigma in cases:
        x, _ = task.sample(n_ref, rng=np.random.default_rng(100))
        values = predict_recovered(task, Gaussian(sigma), x, rng=np.random.default_rng(101))
        expected = recovered_histogram(values, task.lo, task.hi).out_of_support
        try:
            got = report.call(answer, task, sigma, n, 7, what=what)
        except _Failed:
            continue
        atol = _binomial_atol(expected, n, n_ref) if sigma > 0 else 1e-12
        report.close(got, expected, what, atol=atol)


@_checker("ch02-ex-jumps", "jump_fraction", 2, "jump_fraction(curve, sigma, n, seed, gap)",
          "a failed recovery (NaN) counts as a jump: test ~(abs(c_hat - c) <= gap), since "
          "any comparison with NaN is False.")
def _check_jumps(answer, report: _Report) -> None:
    """Chapter 2: the fraction of spiral points that white noise sends more than ``gap``
    away in control (failed recoveries included), compared with the library's simulation
    within five standard errors."""
    from .kernels import Gaussian
    from .tasks import CurveToy

    cases = [
        ("fold 0.25, sigma 0.1, gap 0.25", CurveToy(speed_variation=0.0, fold=0.25), 0.1,
         0.25, 6_000),
        ("v = -0.9, fold 0.6, no margin, sigma 0.15, gap 0.25 (many failures)",
         CurveToy(speed_variation=-0.9, fold=0.6, margin=0.0), 0.15, 0.25, 6_000),
        ("edge case: sigma = 0", CurveToy(speed_variation=0.0, fold=0.25), 0.0, 0.25, 1_000),
    ]
    for what, curve, sigma, gap, n in cases:
        n_ref = 2 * n
        x, c = curve.sample(n_ref, rng=np.random.default_rng(200))
        c_hat = curve.measure(Gaussian(sigma).perturb(x, rng=np.random.default_rng(201)))
        expected = float(np.mean(~(np.abs(c_hat - c) <= gap)))
        try:
            got = report.call(answer, curve, sigma, n, 11, gap, what=what)
        except _Failed:
            continue
        atol = _binomial_atol(expected, n, n_ref) if sigma > 0 else 1e-12
        report.close(got, expected, what, atol=atol)


# --- Chapter 3: conditioning --------------------------------------------------------------

@_checker("ch03-ex-gain", "gain", 3, "gain(task, x, eps)",
          "perturb one coordinate (t, j) at a time by +eps and -eps, divide the change of "
          "task.measure by 2 eps, and take the L2 norm over all L x d coordinates.")
def _check_gain(answer, report: _Report) -> None:
    """Chapter 3: the sensitivity ``|grad M|`` of a recovery at each trajectory, by finite
    differences, compared with ``sensitivity.sensitivity`` to a relative 1e-4."""
    from .sensitivity import sensitivity
    from .tasks import CurveToy, InverseMap1D, LogisticMap

    toy = InverseMap1D(slope_variation=0.8)
    curve = CurveToy(speed_variation=0.9, fold=0.25, length=4)
    logistic = LogisticMap(length=8)
    cases = [
        ("1-D toy, c in {0.25, 0.5, 0.75}", toy, np.array([0.25, 0.5, 0.75])),
        ("spiral observed 4 times (L x d = 4 x 2)", curve, np.array([0.2, 0.5, 0.8])),
        ("logistic map, L = 8", logistic, np.array([3.65, 3.8, 3.95])),
        ("edge case: 1-D toy at the ends c = 0 and c = 1", toy, np.array([0.0, 1.0])),
    ]
    for what, task, c in cases:
        # float64 data: a step of 1e-5 on float32 values would be lost to rounding.
        x = task.generate(c, rng=np.random.default_rng(300)).astype(np.float64)
        expected = sensitivity(task, x)
        report.compare(answer, task, x.copy(), 1e-5,
                       expected=expected, what=what, rtol=1e-4, atol=1e-8)


@_checker("ch03-ex-delta", "local_drift_spread", 3, "local_drift_spread(task, c, sigma)",
          "with M = task.g_inverse and x = task.g(c): drift = 0.5 sigma^2 M''(x) and "
          "spread = sigma^2 M'(x)^2 (a variance, not a standard deviation); central "
          "differences with a step near 1e-4 are accurate enough.")
def _check_delta(answer, report: _Report) -> None:
    """Chapter 3: the delta method's local drift and spread for the 1-D toy, compared with
    ``sensitivity.delta_method_numeric`` to a relative 1e-3."""
    from .sensitivity import delta_method_numeric
    from .tasks import InverseMap1D

    cases = [
        ("v = 0.8, sigma = 0.03", InverseMap1D(slope_variation=0.8), 0.03),
        ("v = -0.5, bumps = 2, sigma = 0.01", InverseMap1D(slope_variation=-0.5, bumps=2),
         0.01),
        ("edge case: sigma = 0", InverseMap1D(slope_variation=0.8), 0.0),
    ]
    c = np.array([0.0, 0.1, 0.3, 0.5, 0.8, 1.0])
    for what, task, sigma in cases:
        x = task.g(c)[:, None, None]
        drift, spread = delta_method_numeric(task, x, sigma=sigma)
        try:
            got = report.call(answer, task, c.copy(), sigma, what=what)
        except _Failed:
            continue
        if not (isinstance(got, tuple) and len(got) == 2):
            report.fail(f"{what}: expected a tuple (drift, spread), got "
                        f"{type(got).__name__}", "return drift, spread")
            continue
        scale = max(float(np.abs(drift).max()), 1e-300)
        report.close(got[0], drift, f"{what}, drift", rtol=1e-3, atol=1e-3 * scale,
                     hint="drift is 0.5 sigma^2 M''(x): mind the 0.5, and M'' of the "
                          "inverse, not g''.")
        scale = max(float(np.abs(spread).max()), 1e-300)
        report.close(got[1], spread, f"{what}, spread", rtol=1e-3, atol=1e-3 * scale,
                     hint="spread is the variance sigma^2 M'(x)^2, with M' = 1 / g'(c).")


# --- Chapter 4: closed-form recoveries -------------------------------------------------------

def _with_edge_rows(x: np.ndarray, rows: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([x, np.stack(rows)[:, :, None]], axis=0)


@_checker("ch04-ex-logistic-fit", "fit_growth_rate", 4, "fit_growth_rate(x)",
          "with f_t = x_t (1 - x_t) for t = 0 .. L-2: r_hat = sum(x_{t+1} f_t) / sum(f_t^2) "
          "per trajectory (a ratio of sums, not a mean of ratios); 0 / 0 is NaN.")
def _check_logistic_fit(answer, report: _Report) -> None:
    """Chapter 4: the least-squares growth rate of logistic-map trajectories, compared with
    ``LogisticMap.measure`` on clean and noisy trajectories and on degenerate ones."""
    from .kernels import Gaussian
    from .tasks import LogisticMap

    task = LogisticMap(length=16)
    x, _ = task.sample(500, rng=np.random.default_rng(400))
    noisy = Gaussian(0.02).perturb(x, rng=np.random.default_rng(401))
    length = task.length
    edge = _with_edge_rows(x[:3], [np.zeros(length), np.ones(length),
                                   np.r_[np.nan, np.full(length - 1, 0.5)]])
    cases = [("clean trajectories", x, 1e-5), ("noisy trajectories", noisy, 1e-5),
             ("edge case: stuck at 0, stuck at 1, NaN", edge, 1e-5)]
    for what, data, rtol in cases:
        expected = task.measure(data)
        try:
            with np.errstate(invalid="ignore", divide="ignore"):
                got = report.call(answer, data.copy(), what=what)
        except _Failed:
            continue
        report.close(got, expected, what, rtol=rtol, atol=1e-6)


@_checker("ch04-ex-sine-fit", "fit_frequency", 4, "fit_frequency(x)",
          "cos(omega_hat) = sum_t x_t (x_{t+1} + x_{t-1}) / (2 sum_t x_t^2) over "
          "t = 1 .. L-2 (both sums), and |cos| > 1 is a failure: NaN, not clipped.")
def _check_sine_fit(answer, report: _Report) -> None:
    """Chapter 4: the least-squares frequency of sinusoid trajectories, compared with
    ``Sinusoid.measure``, including noisy trajectories with no real frequency."""
    from .kernels import Gaussian
    from .tasks import Sinusoid

    task = Sinusoid()
    x, _ = task.sample(500, rng=np.random.default_rng(500))
    noisy = Gaussian(0.05).perturb(x, rng=np.random.default_rng(501)).astype(np.float64)
    # A very noisy set fails often; rows whose |cos| lies within 1e-6 of 1 are dropped, where
    # rounding alone could decide between a failure and a value.
    short = Sinusoid(lo=0.3, hi=0.4, length=6, amp_lo=0.2, amp_hi=0.3)
    xs, _ = short.sample(2000, rng=np.random.default_rng(502))
    xs = Gaussian(0.2).perturb(xs, rng=np.random.default_rng(503)).astype(np.float64)
    mid = xs[:, 1:-1, 0]
    cos = np.sum(mid * (xs[:, 2:, 0] + xs[:, :-2, 0]), 1) / (2 * np.sum(mid * mid, 1))
    xs = xs[np.abs(np.abs(cos) - 1.0) > 1e-6][:300]
    cases = [(task, "clean trajectories", x), (task, "noisy trajectories", noisy),
             (short, "edge case: noisy short ones, many without a real frequency", xs)]
    for t, what, data in cases:
        expected = t.measure(data)
        try:
            with np.errstate(invalid="ignore", divide="ignore"):
                got = report.call(answer, data.copy(), what=what)
        except _Failed:
            continue
        report.close(got, expected, what, rtol=1e-5, atol=1e-5)


# --- Chapters 5 and 6: scoring shipped runs of the store --------------------------------------

def _store_values():
    """Recovered controls of two shipped runs and the run's task, training and fresh data:
    ``(task, train, fresh, {"VAE": samples, "DiffusionMLP": samples})`` (first 2,000 each)."""
    from . import zoo

    samples = {}
    for name in ("VAE", "DiffusionMLP"):
        run = zoo.load("logistic-chaotic", name, seed=0)
        samples[name] = run.samples[:2000]
    return run.task, run.train, run.fresh[:2000], samples


@_checker("ch05-ex-nn-ratio", "nn_ratio", 5, "nn_ratio(samples, train, fresh)",
          "take each sample's distance to its nearest training trajectory (nn_distances), "
          "the median of those, and divide by the same median for the fresh trajectories.")
def _check_nn_ratio(answer, report: _Report) -> None:
    """Chapter 5: the third c-free check, the median nearest-neighbour distance of samples
    to the training set over that of fresh true trajectories, on two shipped runs."""
    from .kernels import Gaussian, nn_distances

    task, train, fresh, samples = _store_values()
    train = train[:4000]
    reference = np.median(nn_distances(fresh, train))
    copies = Gaussian(1e-4).perturb(train[:500], rng=np.random.default_rng(600))
    cases = [(f"{name} samples (store, seed 0)", x) for name, x in samples.items()]
    cases.append(("edge case: near-copies of training trajectories", copies))
    for what, x in cases:
        expected = np.median(nn_distances(x, train)) / reference
        report.compare(answer, x.copy(), train.copy(), fresh.copy(),
                       expected=expected, what=what, rtol=1e-4, atol=1e-6)


@_checker("ch05-ex-failures", "drift_with_failures", 5,
          "drift_with_failures(values, prior, bins)",
          "append one bin for the failures: the prior puts 0 there, the recovered "
          "distribution n_failed / n; the other bins are counts / n (n counts every value, "
          "failed or not), and TV is half the sum of |p - q| over all of them.")
def _check_failures(answer, report: _Report) -> None:
    """Chapter 5: TV with failed recoveries counted as misplaced mass, as
    ``metrics.tv_with_failures``, on shipped runs with failures mixed in."""
    from .metrics import prior_probs, recovered_histogram, tv_with_failures

    task, _, _, samples = _store_values()
    rng = np.random.default_rng(610)
    vae = task.measure(samples["VAE"])
    mlp = task.measure(samples["DiffusionMLP"])
    failed = mlp.copy()
    failed[rng.random(failed.size) < 0.2] = np.nan
    cases = [("VAE run (store, seed 0)", vae), ("DiffusionMLP run (store, seed 0)", mlp),
             ("DiffusionMLP run with a fifth of recoveries failed", failed),
             ("edge case: every recovery failed", np.full(50, np.nan))]
    for what, values in cases:
        for bins in (20, 8):
            expected = tv_with_failures(prior_probs(task.prior, bins),
                                        recovered_histogram(values, task.lo, task.hi, bins))
            label = f"{what}, {bins} bins"
            report.compare(answer, values.copy(), task.prior, bins,
                           expected=expected, what=label, atol=1e-9)


def _predicted_and_observed():
    """``(task, predicted, {"VAE": observed, "DiffusionMLP": observed})``: a white-noise
    kernel's prediction from the training set and two shipped runs' recovered controls."""
    from .kernels import Gaussian, predict_recovered

    task, train, _, samples = _store_values()
    predicted = predict_recovered(task, Gaussian(0.02), train[:4000],
                                  rng=np.random.default_rng(620))
    observed = {name: task.measure(x) for name, x in samples.items()}
    return task, predicted, observed


@_checker("ch06-ex-ef-failures", "ef_with_failures", 6,
          "ef_with_failures(prior, predicted, observed, bins)",
          "give p, q_hat and q one more bin for failures (p: 0, the others: their failed "
          "fraction, with the inside bins as counts over all values), then "
          "EF = 1 - TV(q_hat, q) / TV(p, q) on these extended vectors.")
def _check_ef_failures(answer, report: _Report) -> None:
    """Chapter 6: the explained fraction with failed recoveries as one more bin, as
    ``kernels.agreement(...).explained_fraction_failures``, on shipped runs."""
    from .kernels import agreement

    task, predicted, observed = _predicted_and_observed()
    with_failures = observed["DiffusionMLP"].copy()
    with_failures[::7] = np.nan
    cases = [(f"{name} run (store) against white noise", predicted, values)
             for name, values in observed.items()]
    cases += [("observed with failures", predicted, with_failures),
              ("edge case: a prediction equal to the observation", with_failures,
               with_failures)]
    for what, pred, obs in cases:
        expected = agreement(task.prior, pred, obs, ceiling=False).explained_fraction_failures
        report.compare(answer, task.prior, pred.copy(), obs.copy(), 20,
                       expected=expected, what=what, atol=1e-9)


@_checker("ch06-ex-inside-pearson", "inside_pearson", 6,
          "inside_pearson(prior, predicted, observed, bins)",
          "drop the two overflow bins (the first and the last entry) from both shifts "
          "q_hat - p and q - p before correlating them.")
def _check_inside_pearson(answer, report: _Report) -> None:
    """Chapter 6: the Pearson correlation of predicted and observed per-bin shifts inside
    the range, as ``kernels.agreement(...).inside_pearson``, on shipped runs."""
    from .kernels import agreement

    task, predicted, observed = _predicted_and_observed()
    shuffled = np.random.default_rng(630).permutation(observed["VAE"])
    cases = [(f"{name} run (store) against white noise", predicted, values, 20)
             for name, values in observed.items()]
    cases += [("VAE run, 8 bins", predicted, observed["VAE"], 8),
              ("edge case: a prediction equal to the observation", shuffled,
               observed["VAE"], 20)]
    for what, pred, obs, bins in cases:
        expected = agreement(task.prior, pred, obs, bins, ceiling=False).inside_pearson
        report.compare(answer, task.prior, pred.copy(), obs.copy(), bins,
                       expected=expected, what=what, atol=1e-9)


# --- Chapter 7: the maze planner -------------------------------------------------------------

def _maze_paths():
    """``(task, {what: paths})``: the first 2,000 plans of two seeds of a shipped maze
    planner (store), float64. (The store regenerates demonstrations on demand, too slowly
    for a check.)"""
    from . import zoo

    paths = {}
    for seed in (0, 1):
        run = zoo.load("maze", "DiffusionUNet", seed=seed)
        paths[f"planner's plans (store, seed {seed})"] = run.samples[:2000].astype(float)
    return run.task, paths


def _still_and_straight(length: int = 32) -> np.ndarray:
    """Two edge-case paths: one that never moves, one straight at constant speed."""
    t = np.linspace(0.0, 1.0, length)
    still = np.full((length, 2), 1.5)
    straight = np.stack([1.5 + 2.0 * t, 1.5 + 1.0 * t], axis=1)
    return np.stack([still, straight])


@_checker("ch07-ex-length", "path_length", 7, "path_length(x)",
          "sum the Euclidean lengths sqrt(dx^2 + dy^2) of the L - 1 steps between consecutive "
          "points (channels 0 and 1); a path with a NaN point has no length: NaN.")
def _check_length(answer, report: _Report) -> None:
    """Chapter 7: the travel distance (arc length) of maze paths from their points, as
    ``tasks.maze.travel_distance``, on a shipped planner's plans."""
    from .tasks.maze import travel_distance

    _, paths = _maze_paths()
    edge = _still_and_straight()
    with_nan = paths["planner's plans (store, seed 0)"][:5].copy()
    with_nan[2, 7, 0] = np.nan
    cases = list(paths.items()) + [
        ("edge case: a path that never moves and a straight one", edge),
        ("edge case: a plan with a NaN point", with_nan)]
    for what, x in cases:
        expected = travel_distance(x)
        report.compare(answer, x.copy(), expected=expected, what=what, rtol=1e-6, atol=1e-9)


@_checker("ch07-ex-roughness", "roughness", 7, "roughness(x)",
          "per path: sqrt(mean of squared second differences) / sqrt(mean of squared first "
          "differences), both means over steps and the two channels; guard the denominator "
          "with max(..., 1e-12) so that a path that never moves has roughness 0.")
def _check_roughness(answer, report: _Report) -> None:
    """Chapter 7: a path's roughness, the RMS second difference over the RMS first difference,
    as ``MazeTask.c_free_residual()``, on a shipped planner's plans."""
    task, paths = _maze_paths()
    reference = task.c_free_residual()
    cases = list(paths.items()) + [
        ("edge case: a path that never moves and a straight one", _still_and_straight())]
    for what, x in cases:
        expected = reference(x)
        try:
            with np.errstate(invalid="ignore", divide="ignore"):
                got = report.call(answer, x.copy(), what=what)
        except _Failed:
            continue
        report.close(got, expected, what, rtol=1e-6, atol=1e-9)


# --- Chapter 8: the double pendulum ----------------------------------------------------------

@_checker("ch08-ex-energy", "total_energy", 8, "total_energy(task, state)",
          "V = g ((m1 + m2) l1 (1 - cos th1) + m2 l2 (1 - cos th2)) and T = 0.5 (m1 + m2) l1^2 "
          "w1^2 + 0.5 m2 l2^2 w2^2 + m2 l1 l2 cos(th1 - th2) w1 w2: the coupling term has no "
          "factor 0.5, and E = V + T.")
def _check_energy(answer, report: _Report) -> None:
    """Chapter 8: the total energy of double-pendulum states ``(th1, th2, w1, w2)``, as
    ``DoublePendulum.energy``, for two sets of masses and lengths and at rest."""
    from .tasks import DoublePendulum

    rng = np.random.default_rng(800)
    states = np.column_stack([rng.uniform(-np.pi, np.pi, (500, 2)),
                              rng.normal(0.0, 4.0, (500, 2))])
    rest = np.array([[0.0, 0.0, 0.0, 0.0], [np.pi, np.pi, 0.0, 0.0]])
    cases = [
        ("default pendulum, random states", DoublePendulum(), states),
        ("m1 = 2, m2 = 0.5, l1 = 0.7, l2 = 1.3", DoublePendulum(m1=2.0, m2=0.5, l1=0.7,
                                                                 l2=1.3), states[:100]),
        ("edge case: at rest hanging down, and balanced straight up", DoublePendulum(), rest),
    ]
    for what, task, s in cases:
        expected = task.energy(s)
        report.compare(answer, task, s.copy(), expected=expected, what=what, rtol=1e-9, atol=1e-9)


@_checker("ch08-ex-recover", "recovered_energy", 8, "recovered_energy(task, x)",
          "angles from the pairs with np.arctan2(sin, cos) (arcsin loses the quadrant), the "
          "velocities from channels 4 and 5, task.energy of every frame, and the mean over "
          "the frames; a trajectory with a NaN gives NaN.")
def _check_recover_energy(answer, report: _Report) -> None:
    """Chapter 8: the recovered energy of ``sincos`` trajectories, the mean over frames of
    the frame energy, as ``DoublePendulum.measure``, on two shipped runs."""
    from . import zoo

    cases = []
    for name in ("VAE", "DiffusionMLP"):
        run = zoo.load("pendulum", name, seed=0)
        cases.append((f"{name} samples (store, seed 0)", run.samples[:1000]))
    task = run.task
    edge = run.samples[:4].copy()
    edge[1, 5, 4] = np.nan
    edge[2, :, :4] *= 1.7  # pairs off the unit circle: the angle still reads the same
    cases.append(("edge case: a NaN velocity, and (sin, cos) pairs off the circle", edge))
    for what, x in cases:
        expected = task.measure(x)
        try:
            with np.errstate(invalid="ignore"):
                got = report.call(answer, task, x.copy(), what=what)
        except _Failed:
            continue
        report.close(got, expected, what, rtol=1e-5, atol=1e-6)


# --- Chapter 9: reweighting -----------------------------------------------------------------

def _reweighting_pairs():
    """``(prior, c_train, {what: c_perturbed})``: 5,000 training controls of the store's
    chaotic logistic map and their recovered controls under two white-noise kernels, and a
    kernel that empties the lowest of 20 bins (its recoveries fail, none land there)."""
    from .kernels import Gaussian, predict_recovered
    from .zoo import catalog, make_task

    task = make_task("logistic-chaotic")
    train, c_train = catalog.training_data(catalog.SPECS["logistic-chaotic.DiffusionMLP.s0"])
    train, c_train = train[:5000], c_train[:5000]
    perturbed = {f"white noise {s}": predict_recovered(task, Gaussian(s), train,
                                                       rng=np.random.default_rng(900))
                 for s in (0.01, 0.03)}
    failing = perturbed["white noise 0.01"].copy()
    failing[(c_train < task.lo + 0.02) | (failing < task.lo + 0.02)] = np.nan
    perturbed["edge case: a kernel that empties the lowest bin"] = failing
    return task.prior, c_train, perturbed


@_checker("ch09-ex-ratio-weights", "ratio_weights", 9,
          "ratio_weights(c_train, prior, predicted_values, bins)",
          "p and q_hat are the inside bins only, each normalised to sum 1 there; a trajectory "
          "gets the ratio of the bin of its TRUE control c_train (never of its predicted "
          "value), capped at 20 (q_hat = 0 < p counts as above the cap), then all weights "
          "are scaled to mean 1.")
def _check_ratio_weights(answer, report: _Report) -> None:
    """Chapter 9: the simple rule's weights ``p(b) / q_hat(b)`` per training trajectory, as
    ``mitigations.kernel_weights(...).weights``, on the store's logistic-map training set."""
    from .mitigations import kernel_weights

    prior, c_train, perturbed = _reweighting_pairs()
    cases = [(what, values, 20) for what, values in perturbed.items()]
    cases.insert(1, ("white noise 0.01, 8 bins", perturbed["white noise 0.01"], 8))
    for what, values, bins in cases:
        expected = kernel_weights(c_train, prior, values, prior.lo, prior.hi, bins).weights
        report.compare(answer, c_train.copy(), prior, values.copy(), bins,
                       expected=expected, what=what, rtol=1e-9, atol=1e-9)


@_checker("ch09-ex-rl-step", "richardson_lucy_step", 9,
          "richardson_lucy_step(w, p0, T, p_inside)",
          "with inside = T[:, :B]: q = (p0 * w) @ inside, w_new = w * (inside @ (p / q)) / "
          "inside.sum(axis=1), 0 where a row sends nothing inside (and p / q = 0 where "
          "q = 0), then divide by p0 @ w_new so that the mean weight is 1.")
def _check_rl_step(answer, report: _Report) -> None:
    """Chapter 9: one Richardson-Lucy step on the kernel's transition matrix, compared with
    ``mitigations.iterative_weights`` after ``k`` and ``k - 1`` iterations (no cap)."""
    from .metrics import prior_probs
    from .mitigations import iterative_weights

    prior, c_train, perturbed = _reweighting_pairs()
    bins = 20
    p_inside = prior_probs(prior, bins)[1:-1]
    # A set without training controls in the highest bin: its row of T is all zero.
    sparse = c_train < prior.hi - 0.02
    cases = [("white noise 0.03, first step", c_train, perturbed["white noise 0.03"], 1),
             ("white noise 0.01, fifth step", c_train, perturbed["white noise 0.01"], 5),
             ("edge case: a row sending nothing inside, a bin without training data",
              c_train[sparse], perturbed["edge case: a kernel that empties the lowest bin"]
              [sparse], 1)]
    for what, c, values, k in cases:
        fit = iterative_weights(c, prior, values, prior.lo, prior.hi, bins, iterations=k,
                                clip=1e9)
        t, p0 = fit.transition.matrix, np.bincount(
            np.clip(np.searchsorted(fit.transition.edges, c, side="right") - 1, 0, bins - 1),
            minlength=bins) / c.size
        if k == 1:
            w = (t[:, :bins].sum(axis=1) > 0).astype(float)
        else:
            w = np.nan_to_num(iterative_weights(c, prior, values, prior.lo, prior.hi, bins,
                                                iterations=k - 1, clip=1e9).bin_weights)
        keep = p0 > 0
        try:
            got = report.call(answer, w.copy(), p0.copy(), t.copy(), p_inside.copy(),
                              what=what)
        except _Failed:
            continue
        try:
            got = report.array(got, (bins,), what)[keep]
        except _Failed:
            continue
        report.close(got, fit.bin_weights[keep], what, rtol=1e-7, atol=1e-9)


# --- Chapter 10: coordinates ----------------------------------------------------------------

def _logistic_train(n: int = 4000):
    """``(task, train)``: the first ``n`` training trajectories of a shipped logistic run."""
    from . import zoo

    run = zoo.load("logistic-chaotic", "DiffusionMLP", seed=0)
    return run.task, run.train[:n]


@_checker("ch10-ex-decode", "decode_ratio", 10, "decode_ratio(y, start_shift)",
          "work in float64: x_0 = y_0 - start_shift, then x_t = y_t x_{t-1} (1 - x_{t-1}); "
          "a trajectory with any value that is not finite or above 1e30 in size is a "
          "failure: set the whole trajectory to NaN.")
def _check_decode(answer, report: _Report) -> None:
    """Chapter 10: decoding the logistic map's ratio coordinates back to orbits, as
    ``mitigations.LogisticRatio(start_shift).decode``, including orbits that diverge."""
    from .kernels import Gaussian
    from .mitigations import LogisticRatio

    _, train = _logistic_train(2000)
    noisy = Gaussian(0.05).perturb(LogisticRatio().encode(train), np.random.default_rng(1000))
    cases = [("encoded training orbits (round trip)", LogisticRatio(), train),
             ("start_shift = 0", LogisticRatio(start_shift=0.0), train[:500]),
             ("edge case: noisy ratios, some orbits diverge", LogisticRatio(), None)]
    for what, rep, x in cases:
        y = noisy if x is None else rep.encode(x)
        expected = rep.decode(y)
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                got = report.call(answer, y.copy(), rep.start_shift, what=what)
        except _Failed:
            continue
        report.close(got, expected, what, rtol=1e-5, atol=1e-6)


@_checker("ch10-ex-predicted-tv", "predicted_tv", 10,
          "predicted_tv(task, rep, train, kernel, seed)",
          "standardise y = rep.encode(train) per channel (mean and std over trajectories and "
          "steps, a std below 1e-8 counts as 1), perturb the standardised y with "
          "kernel.perturb, undo the standardisation, decode, measure, and score with "
          "tv_with_failures on 20 bins.")
def _check_predicted_tv(answer, report: _Report) -> None:
    """Chapter 10: the drift a kernel predicts for a model trained in a representation, the
    kernel acting in the model's standardised coordinates, as
    ``mitigations.predicted_drift(...)["tv"]``, within the seed-to-seed spread."""
    from .kernels import Gaussian
    from .mitigations import Identity, LogisticRatio, predicted_drift

    task, train = _logistic_train()
    cases = [("data coordinates, kernel 0.1", Identity(), Gaussian(0.1)),
             ("ratio coordinates, kernel 0.1", LogisticRatio(), Gaussian(0.1)),
             ("ratio coordinates without start_shift, kernel 0.1",
              LogisticRatio(start_shift=0.0), Gaussian(0.1)),
             ("edge case: a kernel of scale 0", LogisticRatio(), Gaussian(0.0))]
    for what, rep, kernel in cases:
        expected = predicted_drift(task, rep, train, kernel, rng=np.random.default_rng(1010))
        try:
            got = report.call(answer, task, rep, train.copy(), kernel, 1010, what=what)
        except _Failed:
            continue
        # Another draw of the noise moves the TV by about 0.01 here.
        atol = 0.025 if kernel.sigma > 0 else 1e-9
        report.close(got, expected["tv"], what, atol=atol)


# --- Chapter 11: confounds ------------------------------------------------------------------

def _arm_rows(keys):
    """The shipped score rows of the default-recovery arms ``(confound, task, variant)``."""
    from .confounds import load_scores

    rows = {}
    for row in load_scores()["rows"]:
        arm = row["arm"]
        key = (arm["confound"], arm["task"], arm["variant"])
        if key in keys and arm["recovery"] == "default" and arm["model"] == "DiffusionMLP":
            rows[key] = row
    return [rows[key] for key in keys]


@_checker("ch11-ex-arm-tv", "arm_mean_tv", 11, "arm_mean_tv(arm, seeds)",
          "for each seed: zoo.load(arm.task, arm.model, seed, variant=arm.variant), recover "
          "the samples with run.task.measure, TV against run.task.prior (not a uniform one) "
          "over 20 bins with the two overflow bins; then the mean over all the seeds.")
def _check_arm_tv(answer, report: _Report) -> None:
    """Chapter 11: an arm's drift, the mean over seeds of each run's TV, as the shipped
    confound scores (``confounds.load_scores``, ``tv_mean``) computed from the store."""
    from .confounds import Arm

    keys = [("dataset size", "logistic-chaotic", "data2k"),
            ("chaoticity", "logistic-periodic", ""),
            ("prior shape", "logistic-peaked", "")]
    whats = ["dataset size, 2,000 training trajectories", "chaoticity, periodic window",
             "edge case: prior shape, a peaked prior"]
    for what, row in zip(whats, _arm_rows(keys)):
        arm = Arm(**row["arm"])
        try:
            got = report.call(answer, arm, tuple(row["seeds"]), what=what)
        except _Failed:
            continue
        report.close(got, row["tv_mean"], what, atol=1e-6)


@_checker("ch11-ex-ceiling", "ceiling_ef", 11, "ceiling_ef(prior, values_by_seed)",
          "use every ORDERED pair (i, j), i != j: seed i's values as the prediction of seed "
          "j's, agreement(prior, values_i, values_j, ceiling=False).explained_fraction; the "
          "EF is not symmetric, so (i, j) and (j, i) differ; average the finite ones.")
def _check_ceiling(answer, report: _Report) -> None:
    """Chapter 11: the seed-to-seed ceiling of the explained fraction, as
    ``confounds._pairwise_ceiling(...)["explained_fraction"]``, on shipped runs."""
    from . import zoo
    from .confounds import _pairwise_ceiling

    values = {}
    for key in ("logistic-chaotic", "logistic-peaked"):
        runs = [zoo.load(key, "DiffusionMLP", seed) for seed in (0, 1, 2)]
        values[key] = (runs[0].task.prior, [r.task.measure(r.samples) for r in runs])
    prior, chaotic = values["logistic-chaotic"]
    cases = [("chaotic logistic map, three seeds", prior, chaotic),
             ("peaked prior, three seeds", *values["logistic-peaked"]),
             ("edge case: two seeds", prior, chaotic[:2])]
    for what, prior, by_seed in cases:
        expected = _pairwise_ceiling(prior, by_seed)["explained_fraction"]
        report.compare(answer, prior, [v.copy() for v in by_seed],
                       expected=expected, what=what, atol=1e-9)


# --- Chapter 12: the speaking rate ----------------------------------------------------------

def _envelopes():
    """``(task, {what: envelopes})``: 1,000 samples of a shipped speech model (store, seed 1)
    and 300 true envelopes with a stress from 0.4 to 0.9 (up to 0.5 in the task), float64."""
    from . import zoo

    run = zoo.load("speech", "DiffusionMLP", seed=1)
    task = run.task
    rng = np.random.default_rng(1200)
    stressed = task.envelope(rng.uniform(task.lo, task.hi, 300), rng.uniform(0.5, 1.0, 300),
                             rng.uniform(0.0, 1.0, 300), rng.uniform(0.4, 0.9, 300))
    return task, {"DiffusionMLP samples (store, seed 1)": run.samples[:1000].astype(float),
                  "true envelopes with stress 0.4 to 0.9": stressed.astype(float)}


@_checker("ch12-ex-octave", "octave_fraction", 12, "octave_fraction(task, x)",
          "period = task.frame_rate / task.measure(x); a local maximum of the "
          "autocorrelation at lag k (1 <= k <= L-2, acf[k] > acf[k-1], acf[k] >= acf[k+1]) "
          "with |k - period / 2| <= 1.5 is an octave error; a failed recovery is not one, "
          "but it still counts in the denominator: divide by all envelopes.")
def _check_octave(answer, report: _Report) -> None:
    """Chapter 12: the fraction of envelopes with an octave error, as
    ``SyllableEnvelope.octave_errors(x).mean()``, on a shipped run and stressed envelopes."""
    task, cases = _envelopes()
    mixed = cases["true envelopes with stress 0.4 to 0.9"][:100].copy()
    mixed[:20] = 0.0  # flat envelopes: failed recoveries
    mixed[20:30, 5] = np.nan
    cases["edge case: flat envelopes and NaN among stressed ones"] = mixed
    for what, x in cases.items():
        expected = float(task.octave_errors(x).mean())
        try:
            with np.errstate(invalid="ignore", divide="ignore"):
                got = report.call(answer, task, x.copy(), what=what)
        except _Failed:
            continue
        report.close(got, expected, what, atol=1e-9)


@_checker("ch12-ex-acf", "autocorrelation", 12, "autocorrelation(x)",
          "remove each envelope's mean, a(tau) = sum_t e_t e_{t+tau} for tau = 0 .. L-1, "
          "divide by a(0) and by the overlap (L - tau) / L; a flat envelope has a(0) = 0 "
          "and gives NaN.")
def _check_acf(answer, report: _Report) -> None:
    """Chapter 12: the tracker's normalised autocorrelation, as
    ``SyllableEnvelope.autocorrelation``, on a shipped run and stressed envelopes."""
    task, cases = _envelopes()
    edge = cases["true envelopes with stress 0.4 to 0.9"][:3].copy()
    edge[1] = 0.0
    cases["edge case: a flat envelope among true ones"] = edge
    for what, x in cases.items():
        with np.errstate(invalid="ignore", divide="ignore"):
            expected = task.autocorrelation(x)
        try:
            with np.errstate(invalid="ignore", divide="ignore"):
                got = report.call(answer, x.copy(), what=what)
        except _Failed:
            continue
        report.close(got, expected, what, rtol=1e-7, atol=1e-9)
