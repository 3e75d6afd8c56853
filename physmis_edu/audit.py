"""Auditing a trained model's samples for physical misgeneralization (the practitioner's audit;
README, "Auditing your own model").

Given a training set and a model's samples (arrays ``(n, L, d)``), a measurement ``M`` (a task of
the store, or any function ``(n, L, d) -> (n,)`` with ``NaN`` for failures) and a prior,
:func:`audit` reports what the book measures chapter by chapter, in one place:

* the recovered distribution ``q`` of the samples against the reference ``p``, with the
  finite-sample null and a split-half reference (how different two halves of the same samples
  are); distances with bootstrap intervals; out-of-range and failed-recovery mass;
* the c-free sample checks that apply (states in bounds, the rule's residual, the distance to the
  nearest training trajectory), judged against held-out training trajectories;
* a white-noise kernel calibrated without ``c`` (nearest-neighbour distances), its prediction
  ``q_hat`` and its agreement with ``q``, with the perfect-model control;
* where the recovery is most sensitive: the local gain ``|dM/dx|`` per bin.

The reference ``p`` is either a named prior (``uniform:LO:HI``, or ``task``: the task's own) or,
by default, ``data``: the training set's own recovered distribution. With ``data`` both
histograms are estimates, so the null is a two-sample null (a histogram of ``n_train`` and one of
``n`` draws, both from the training histogram) and the bootstrap resamples both sets.
The command line ``physmis audit`` (:mod:`physmis_edu.cli`) calls :func:`audit`; the JSON
document it writes is :attr:`AuditResult.report`, whose fields the README documents.
Heavy imports (scipy, matplotlib, tqdm) are deferred to the steps that need them.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._io import jsonable, progress_disabled, writable_folder
from ._validation import _reject_complex, check_positive_int, check_seed, check_trajectories

__all__ = ["SCHEMA", "VERSION", "AuditInputError", "AuditResult", "audit", "format_summary",
           "plot_audit", "JSON_NAME", "PNG_NAME"]

SCHEMA = "physmis-audit"
VERSION = 1
JSON_NAME = "audit.json"
PNG_NAME = "audit.png"
SUMMARY_WIDTH = 88

# Sizes of the steps; fixed so that a report is reproducible from its inputs and seed.
_HOLDOUT_MAX = 2000          # held-out training trajectories standing in for fresh true data
_SENS_PER_BIN = 48           # training trajectories per bin for the local gain
_SENS_DRAWS = 4              # random directions per trajectory
_SENS_STEP = 1e-3            # perturbation std, relative to the training set's std
_TOP_BINS = 3
_FLAT_GAIN = 1.5            # top gains below 1.5x the median: a flat profile
_KERNEL_PERTURB = 500        # perturbed training trajectories per calibration trial
_MIN_TRAJECTORIES = 10


class AuditInputError(ValueError):
    """Bad input to :func:`audit`, naming the argument (the practitioner's audit; README).

    ``argument`` is the Python name (``train``, ``samples``, ``task``, ``measure``, ``prior``,
    ``control_range``, ``bins``, ``seed``, ``out``, ...); the command line shows it as its option
    (``--train``, ...). ``str(err)`` is ``"argument: detail"``.
    """

    def __init__(self, argument: str, detail: str):
        self.argument = argument
        self.detail = detail
        super().__init__(f"{argument}: {detail}")


# ---------------------------------------------------------------------------------------------
# Inputs: arrays, the measurement, the prior, the output folder
# ---------------------------------------------------------------------------------------------

def _load_trajectories(value, argument: str) -> tuple[np.ndarray, str]:
    """An ``(n, L, d)`` float64 array from an array or a ``.npy``/``.npz`` path, and its source.

    A ``.npz`` file must hold one array, or an array named ``x``, or name it: ``FILE.npz:KEY``.
    """
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        key = None
        head, sep, tail = text.rpartition(":")
        if sep and head.endswith(".npz") and not os.path.exists(text):
            text, key = head, tail
        path = Path(text)
        if not path.exists():
            raise AuditInputError(argument, f"file not found: {text}")
        if not path.is_file():
            raise AuditInputError(argument, f"not a file: {text}")
        try:
            loaded = np.load(path, allow_pickle=False)
        except Exception as err:  # any reader failure is bad input here
            raise AuditInputError(argument, f"cannot read {text} as a .npy or .npz array "
                                            f"({type(err).__name__}: {err})") from err
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                names = list(loaded.files)
                if key is None:
                    if len(names) == 1:
                        key = names[0]
                    elif "x" in names:
                        key = "x"
                    else:
                        raise AuditInputError(argument, f"{text} holds arrays {names}; name one "
                                                        f"as {text}:KEY")
                if key not in names:
                    raise AuditInputError(argument, f"{text} has no array {key!r}; "
                                                    f"it holds {names}")
                array = loaded[key]
            source = f"{text}:{key}"
        else:
            array, source = loaded, text
        what = f"the array in {source}"
    else:
        array, source, what = value, "array", "the array"
    try:
        _reject_complex(array, what)
        arr = np.asarray(array)
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{what} must be numeric; got dtype {arr.dtype}")
        arr = check_trajectories(arr, what)
    except ValueError as err:
        raise AuditInputError(argument, str(err)) from err
    return arr, source


def _parse_pair(text: str, argument: str, form: str) -> tuple[float, float]:
    parts = text.split(":")
    try:
        lo, hi = (float(v) for v in parts)
    except ValueError as err:
        raise AuditInputError(argument, f"expected {form} with two numbers; got {text!r}") from err
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise AuditInputError(argument, f"expected {form} with finite LO < HI; got {text!r}")
    return lo, hi


def _import_function(spec: str):
    """The callable named by ``module:function`` or ``path/to/file.py:function``."""
    if not isinstance(spec, str) or ":" not in spec:
        raise AuditInputError("measure", "expected a callable, 'module:function' or "
                                         f"'path/to/file.py:function'; got {spec!r}")
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr:
        raise AuditInputError("measure", f"expected 'module:function'; got {spec!r}")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise FileNotFoundError(f"no file {module_name}")
            mod_spec = importlib.util.spec_from_file_location(
                f"_physmis_audit_measure_{path.stem}", path)
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
        else:
            # Like `python -m`, look in the working directory too (console scripts do not).
            added = os.getcwd() not in sys.path
            if added:
                sys.path.insert(0, os.getcwd())
            try:
                module = importlib.import_module(module_name)
            finally:
                if added:
                    with contextlib.suppress(ValueError):
                        sys.path.remove(os.getcwd())
    except Exception as err:  # whatever the import raises, it does not import
        raise AuditInputError("measure", f"{module_name!r} does not import "
                                         f"({type(err).__name__}: {err})") from err
    fn = module
    for part in attr.split("."):
        if not hasattr(fn, part):
            raise AuditInputError("measure", f"module {module_name!r} has no attribute {attr!r}")
        fn = getattr(fn, part)
    if not callable(fn):
        raise AuditInputError("measure", f"{spec} is not callable; expected a function "
                                         "(n, L, d) -> (n,)")
    return fn


@dataclass
class _Measurement:
    """The recovery ``M``: a task's, or a user function's with its output checked."""

    kind: str
    name: str
    task: object = None
    fn: object = None
    control_name: str = "c"
    units: str = ""

    @property
    def length(self):
        return getattr(self.task, "length", None) if self.task is not None else None

    @property
    def channels(self):
        return getattr(self.task, "channels", None) if self.task is not None else None

    def measure(self, x, what: str = "trajectories") -> np.ndarray:
        return self.recover(x, what)[0]

    def recover(self, x, what: str) -> tuple[np.ndarray, dict]:
        """``(values, failure counts by reason)``."""
        if self.task is not None:
            if hasattr(self.task, "recover"):
                rec = self.task.recover(x)
                return np.asarray(rec.values, dtype=np.float64), rec.failure_counts()
            values = np.asarray(self.task.measure(x), dtype=np.float64)
        else:
            try:
                out = self.fn(x)
            except Exception as err:  # the user's function failed: bad input
                raise AuditInputError("measure", f"{self.name} raised {type(err).__name__} on "
                                                 f"{what}: {err}") from err
            try:
                _reject_complex(out, "its output")
                values = np.asarray(out, dtype=np.float64)
            except (TypeError, ValueError) as err:
                raise AuditInputError("measure", f"{self.name} must return a real array of "
                                                 f"shape (n,); got {type(out).__name__} on "
                                                 f"{what}") from err
        if values.shape != (x.shape[0],):
            raise AuditInputError("measure", f"{self.name} must return one value per trajectory, "
                                             f"shape ({x.shape[0]},); got shape {values.shape} "
                                             f"on {what}")
        if np.isinf(values).any():
            raise AuditInputError("measure", f"{self.name} returned {int(np.isinf(values).sum())} "
                                             f"infinite values on {what}; mark failed "
                                             "recoveries as NaN")
        n_failed = int(np.isnan(values).sum())
        return values, ({"not finite (NaN)": n_failed} if n_failed else {})


def _resolve_measurement(task, measure) -> _Measurement:
    if (task is None) == (measure is None):
        raise AuditInputError("task", "give exactly one of task (a task key of the store) and "
                                      "measure (a function or 'module:function')")
    if task is not None:
        from .zoo.catalog import TASKS

        if isinstance(task, str):
            if task not in TASKS:
                raise AuditInputError("task", f"unknown task {task!r}; expected one of "
                                              f"{', '.join(sorted(TASKS))}")
            obj, name = TASKS[task](), task
        elif hasattr(task, "measure") and hasattr(task, "lo"):
            obj, name = task, getattr(task, "name", type(task).__name__)
        else:
            raise AuditInputError("task", f"expected a task key ({', '.join(sorted(TASKS))}) or "
                                          f"a physmis_edu Task; got {type(task).__name__}")
        return _Measurement("task", name, task=obj,
                            control_name=getattr(obj, "control_name", "c"),
                            units=getattr(obj, "units", ""))
    if callable(measure):
        name = getattr(measure, "__qualname__", None) or type(measure).__name__
        module = getattr(measure, "__module__", None)
        return _Measurement("function", f"{module}:{name}" if module else name, fn=measure)
    return _Measurement("function", str(measure), fn=_import_function(measure))


def _parse_prior(prior, measurement: _Measurement):
    """``("data", None)``, ``("uniform", Prior)`` or ``("task", Prior)``."""
    from .tasks import Prior

    if prior is None or (isinstance(prior, str) and prior == "data"):
        return "data", None
    if isinstance(prior, str):
        if prior == "task":
            if measurement.task is None:
                raise AuditInputError("prior", "'task' needs a built-in task (task=...); with a "
                                               "measure function use 'data' or 'uniform:LO:HI'")
            return "task", measurement.task.prior
        name, _, rest = prior.partition(":")
        if name == "uniform":
            lo, hi = _parse_pair(rest, "prior", "'uniform:LO:HI'")
            return "uniform", Prior(lo, hi)
        raise AuditInputError("prior", f"unknown prior {prior!r}; expected 'data' (the training "
                                       "set's recovered distribution), 'task' or 'uniform:LO:HI'")
    if hasattr(prior, "bin_probs") and hasattr(prior, "lo") and hasattr(prior, "cdf"):
        return "given", prior
    raise AuditInputError("prior", f"expected 'data', 'task', 'uniform:LO:HI' or a Prior; "
                                   f"got {type(prior).__name__}")


class _EmpiricalPrior:
    """The training histogram inside ``[lo, hi]`` as a piecewise-uniform density.

    Its bin probabilities on the audit's own edges are exactly the training histogram's (its CDF
    is linear between edges), so the library's agreement scores can use it as the prior.
    """

    is_uniform = False
    density = None

    def __init__(self, edges: np.ndarray, inside_probs: np.ndarray):
        self.lo, self.hi = float(edges[0]), float(edges[-1])
        self._edges = edges
        total = inside_probs.sum()
        probs = inside_probs / total if total > 0 else np.full(inside_probs.size,
                                                               1.0 / inside_probs.size)
        self._cum = np.concatenate([[0.0], np.cumsum(probs)])
        self._cum[-1] = 1.0

    def cdf(self, c) -> np.ndarray:
        return np.interp(np.asarray(c, dtype=np.float64), self._edges, self._cum)

    def bin_probs(self, edges) -> np.ndarray:
        return np.diff(self.cdf(np.asarray(edges, dtype=np.float64)))

    def sample(self, n, rng=None) -> np.ndarray:
        from ._validation import as_rng

        u = as_rng(rng).random(int(n))
        return np.interp(u, self._cum, self._edges)

    def __repr__(self) -> str:
        return f"training histogram on [{self.lo:g}, {self.hi:g}]"


def _check_out(out) -> Path:
    """The output folder, created and probed for writing before any work is done."""
    try:
        return writable_folder(out)
    except ValueError as err:
        raise AuditInputError("out", str(err)) from err


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------

def _bc_interval(boot: np.ndarray, estimate: float, level: float = 0.95) -> tuple[float, float]:
    """Bias-corrected percentile interval (Efron 1981; BCa without the acceleration).

    Raises ``ValueError`` where no honest interval exists (as ``metrics.bootstrap_ci`` does).
    """
    from scipy.special import ndtr, ndtri

    if not np.isfinite(boot).all():
        raise ValueError(f"the statistic was not finite on {int((~np.isfinite(boot)).sum())} "
                         "resamples")
    below = (np.sum(boot < estimate) + 0.5 * np.sum(boot == estimate)) / boot.size
    if below in (0.0, 1.0):
        side = "below" if below == 0.0 else "above"
        raise ValueError(f"the estimate {estimate:.4g} lies {side} all {boot.size} resampled "
                         "values: the bias correction is infinite (a statistic at its floor)")
    z0 = ndtri(below)
    tail = 0.5 * (1.0 - level)
    alpha = ndtr(2.0 * z0 + ndtri(np.array([tail, 1.0 - tail])))
    lo, hi = np.quantile(boot, alpha)
    if not lo <= estimate <= hi:
        raise ValueError(f"the bias-corrected interval [{lo:.4g}, {hi:.4g}] excludes the "
                         f"estimate {estimate:.4g} (a statistic near its floor)")
    return float(lo), float(hi)


def _tv(a: np.ndarray, b: np.ndarray) -> float:
    # metrics.total_variation without its input checks, for the bootstrap's inner loop.
    return float(0.5 * np.abs(a - b).sum())


def _with_failures(h) -> np.ndarray:
    """All values' distribution: bins over ``n_total``, then the failed fraction."""
    return np.append(h.counts / h.n_total, h.failed_fraction)


def _compare_to_prior(values, prior, bins, n_null, n_boot, rng) -> dict:
    """A named prior: the library's drift report (one-sample null, BCa intervals)."""
    from .metrics import drift_report

    rep = drift_report(values, prior, bins=bins, n_null=n_null, n_boot=n_boot, rng=rng)
    return dict(
        p=rep.prior_probs, q=rep.histogram.probs, hist=rep.histogram, tv=rep.tv,
        tv_ci=rep.tv_ci, w1=rep.w1, w1_ci=rep.w1_ci, js=rep.js, tv_failed=rep.tv_failed,
        null99=rep.null_tv99, band=rep.null_band, ci_notes=dict(rep.ci_notes),
        null_kind="one-sample: TV(p, q_N) for N draws from the prior, N = the samples' "
                  "finite recoveries",
        ci_method="BCa bootstrap of the samples (the prior is exact)",
    )


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Index into ``[below, bin_1..bin_B, above, failed]``, as ``recovered_histogram`` bins."""
    bins = edges.size - 1
    idx = np.full(values.size, bins + 2)
    finite = np.isfinite(values)
    inside = np.searchsorted(edges, values[finite], side="right")
    inside[values[finite] == edges[-1]] = bins
    idx[finite] = inside
    return idx


class _JointBootstrap:
    """Resamples of two sets of recovered values as multiplicities (no copying, no sorting).

    A resample of ``n`` values is a vector of counts over the ``n`` values; histogram counts and
    the Wasserstein-1 distance between the finite values are weighted sums over one merged sort
    done once (``W1 = int |F_a - F_b|``), so each resample costs O(n).
    """

    def __init__(self, a: np.ndarray, b: np.ndarray, edges: np.ndarray):
        self.sizes = (a.size, b.size)
        self.cells = edges.size + 2
        self.idx = (_bin_index(a, edges), _bin_index(b, edges))
        self.finite = (np.isfinite(a), np.isfinite(b))
        merged = np.concatenate([a[self.finite[0]], b[self.finite[1]]])
        self.order = np.argsort(merged, kind="stable")
        self.n_a_finite = int(self.finite[0].sum())
        self.dx = np.diff(merged[self.order])

    def statistics(self, wa: np.ndarray, wb: np.ndarray) -> tuple[float, float]:
        """TV between the finite histograms and W1 between the finite values, for counts
        ``wa``, ``wb`` over the values."""
        ca = np.bincount(self.idx[0], weights=wa, minlength=self.cells)[:-1]
        cb = np.bincount(self.idx[1], weights=wb, minlength=self.cells)[:-1]
        if ca.sum() == 0 or cb.sum() == 0:
            return float("nan"), float("nan")
        fa, fb = wa[self.finite[0]], wb[self.finite[1]]
        signed = np.concatenate([fa / fa.sum(), -fb / fb.sum()])[self.order]
        w1 = float(np.sum(np.abs(np.cumsum(signed)[:-1]) * self.dx))
        return _tv(ca / ca.sum(), cb / cb.sum()), w1

    def draw(self, rng) -> tuple[float, float]:
        na, nb = self.sizes
        wa = np.bincount(rng.integers(0, na, na), minlength=na).astype(np.float64)
        wb = np.bincount(rng.integers(0, nb, nb), minlength=nb).astype(np.float64)
        return self.statistics(wa, wb)


def _compare_to_data(values, train_values, lo, hi, bins, n_null, n_boot, rng) -> dict:
    """The training set's recovered distribution: two-sample null, joint bootstrap."""
    from .metrics import jensen_shannon, recovered_histogram, total_variation, wasserstein1

    h_q = recovered_histogram(values, lo, hi, bins)
    h_p = recovered_histogram(train_values, lo, hi, bins)
    p, q = h_p.probs, h_q.probs
    tv = total_variation(p, q)
    w1 = wasserstein1(values, train_values)
    na, nb = h_p.n_finite, h_q.n_finite
    a = rng.multinomial(na, p, size=n_null) / na
    b = rng.multinomial(nb, p, size=n_null) / nb
    null_tvs = 0.5 * np.abs(a - b).sum(axis=1)
    shifted = p + (b - a)
    band = (np.quantile(shifted, 0.005, axis=0), np.quantile(shifted, 0.995, axis=0))
    joint = _JointBootstrap(train_values, values, h_p.edges)
    boot = np.array([joint.draw(rng) for _ in range(n_boot)])
    notes, cis = {}, {}
    for name, column, est in (("TV", 0, tv), ("W1", 1, w1)):
        try:
            cis[name] = _bc_interval(boot[:, column], est)
        except ValueError as err:
            notes[name] = str(err)
            cis[name] = (float("nan"), float("nan"))
    return dict(
        p=p, q=q, hist=h_q, tv=tv, tv_ci=cis["TV"], w1=w1, w1_ci=cis["W1"],
        js=jensen_shannon(p, q),
        tv_failed=total_variation(_with_failures(h_p), _with_failures(h_q)),
        null99=float(np.quantile(null_tvs, 0.99)), band=band, ci_notes=notes,
        null_kind="two-sample: TV between a histogram of n_train and one of N draws, both from "
                  "the training histogram (both are estimates)",
        ci_method="bias-corrected percentile bootstrap, training set and samples resampled "
                  "jointly",
    )


def _split_half(values, p, lo, hi, bins, n_null, rng) -> dict:
    """Drift between two random halves of the samples: what sampling noise alone makes."""
    from .metrics import pearson, recovered_histogram, total_variation

    order = rng.permutation(values.size)
    half = values.size // 2
    ha = recovered_histogram(values[order[:half]], lo, hi, bins)
    hb = recovered_histogram(values[order[half:]], lo, hi, bins)
    out = dict(n=[int(ha.n_total), int(hb.n_total)], tv=None, null_tv99=None,
               shift_pearson=None)
    if ha.n_finite == 0 or hb.n_finite == 0:
        return out
    pooled = recovered_histogram(values, lo, hi, bins).probs
    a = rng.multinomial(ha.n_finite, pooled, size=n_null) / ha.n_finite
    b = rng.multinomial(hb.n_finite, pooled, size=n_null) / hb.n_finite
    out.update(tv=total_variation(ha.probs, hb.probs),
               null_tv99=float(np.quantile(0.5 * np.abs(a - b).sum(axis=1), 0.99)),
               shift_pearson=pearson(ha.probs - p, hb.probs - p))
    return out


def _recovery_summary(values: np.ndarray, reasons: dict, lo: float, hi: float) -> dict:
    finite = values[np.isfinite(values)]
    n = values.size
    below = float(np.sum(finite < lo) / finite.size) if finite.size else None
    above = float(np.sum(finite > hi) / finite.size) if finite.size else None
    return dict(n=int(n), n_failed=int(n - finite.size), failed_fraction=(n - finite.size) / n,
                below=below, above=above,
                out_of_range=None if below is None else below + above,
                failure_reasons={str(k): int(v) for k, v in reasons.items()})


def _nn_hist(a: np.ndarray, b: np.ndarray, bins: int = 30) -> dict:
    top = float(np.quantile(np.concatenate([a, b]), 0.995))
    top = top if top > 0 else 1.0
    edges = np.linspace(0.0, top, bins + 1)
    da = np.histogram(np.clip(a, 0, top), edges, density=True)[0]
    db = np.histogram(np.clip(b, 0, top), edges, density=True)[0]
    return dict(edges=edges, samples=da, reference=db)


def _checks(measurement, train, samples, rng) -> dict:
    """The c-free checks of Chapter 5, with held-out training trajectories as the true data."""
    from .kernels import nn_distances
    from .zoo import checks as zc

    n_hold = min(_HOLDOUT_MAX, max(1, train.shape[0] // 5))
    order = rng.permutation(train.shape[0])
    hold, ref = train[np.sort(order[:n_hold])], train[np.sort(order[n_hold:])]
    nn_s, nn_h = nn_distances(samples, ref), nn_distances(hold, ref)
    med_s, med_h = float(np.median(nn_s)), float(np.median(nn_h))
    ratio = med_s / med_h if med_h > 0 else float("nan")
    failed = []
    task = measurement.task
    bounds = zc.state_bounds(task) if task is not None else None
    inside = dict(applies=bounds is not None, samples=None, reference=None,
                  pass_mark=zc.INSIDE_MIN, passed=None)
    if bounds is not None:
        inside["bounds"] = [float(bounds[0]), float(bounds[1])]
        for key, x in (("samples", samples), ("reference", hold)):
            inside[key] = float(((x >= bounds[0]) & (x <= bounds[1])).all(axis=(1, 2)).mean())
        inside["passed"] = inside["samples"] >= zc.INSIDE_MIN
        if not inside["passed"]:
            failed.append(f"only {inside['samples']:.1%} of samples stay in the state bounds")
    has_rule = task is not None and (hasattr(task, "c_free_residual")
                                     and task.c_free_residual() is not None)
    residual = dict(applies=bool(has_rule), samples=None, reference=None, pass_mark=None,
                    passed=None)
    if has_rule:
        with np.errstate(all="ignore"):
            res_s = float(np.nanmedian(zc.relative_residual(task, samples)))
            res_h = float(np.nanmedian(zc.relative_residual(task, hold)))
        mark = max(zc.RESIDUAL_MAX, zc.NN_RATIO_MAX * res_h)
        residual.update(samples=res_s, reference=res_h, pass_mark=mark,
                        passed=bool(res_s <= mark))
        if not residual["passed"]:
            failed.append(f"median rule residual {res_s:.1%} > {mark:.0%}")
    nn = dict(applies=True, samples=med_s, reference=med_h, ratio=ratio,
              pass_range=[1.0 / zc.NN_RATIO_MAX, zc.NN_RATIO_MAX], passed=None,
              hist=_nn_hist(nn_s, nn_h))
    if np.isfinite(ratio):
        nn["passed"] = bool(1.0 / zc.NN_RATIO_MAX <= ratio <= zc.NN_RATIO_MAX)
        if ratio > zc.NN_RATIO_MAX:
            failed.append(f"{ratio:.2f}x farther from the training data than held-out data")
        elif ratio < 1.0 / zc.NN_RATIO_MAX:
            failed.append(f"{1 / ratio:.2f}x closer to the training data than held-out data "
                          "(copying)" if ratio > 0 else "exact copies of training trajectories")
    return dict(reference=f"{n_hold} held-out training trajectories, against the other "
                          f"{ref.shape[0]}", n_heldout=n_hold,
                inside=inside, residual=residual, nn=nn, failed=failed, passed=not failed,
                _split=(hold, ref))


def _kernel(measurement, prior_obj, p, lo, hi, bins, train, samples, values, split, seed,
            rng) -> tuple[dict, np.ndarray | None, list]:
    """White noise calibrated on NN distances (no c), its prediction and agreement scores."""
    from .kernels import Gaussian, agreement, calibrate
    from .metrics import recovered_histogram, total_variation

    notes = []

    def fit(target_train, target_samples):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cal = calibrate(Gaussian, target_train, target_samples, rng=rng,
                            n_perturb=_KERNEL_PERTURB)
        notes.extend(str(w.message) for w in caught)
        return cal

    cal = fit(train, samples)
    q_hat_values = measurement.measure(cal.kernel.perturb(train, rng),
                                       "kernel-perturbed training trajectories")
    h_hat = recovered_histogram(q_hat_values, lo, hi, bins)
    out = dict(family="Gaussian", sigma=cal.scale,
               calibration=dict(statistic="distance to the nearest training trajectory "
                                          "(Wasserstein-1 between distributions)",
                                samples_median_nn=cal.target_median,
                                kernel_median_nn=cal.fitted_median, at_edge=cal.at_edge),
               predicted=dict(n=h_hat.n_total, n_failed=h_hat.n_failed,
                              q=h_hat.probs if h_hat.n_finite else None,
                              out_of_range=h_hat.out_of_support if h_hat.n_finite else None,
                              tv_to_reference=(total_variation(h_hat.probs, p)
                                               if h_hat.n_finite else None)),
               agreement=None, perfect_model=None)
    if h_hat.n_finite == 0:
        notes.append("every recovery of the kernel-perturbed training set failed: no agreement "
                     "scores")
        return out, None, notes
    agr = agreement(prior_obj, q_hat_values, values, bins=bins, ceiling=True, rng=seed)
    out["agreement"] = dict(
        inside_pearson=agr.inside_pearson, pearson=agr.pearson, spearman=agr.spearman,
        sign_agree=agr.sign_agree, explained_fraction=agr.explained_fraction,
        explained_fraction_failures=agr.explained_fraction_failures,
        ef_ceiling=list(agr.ef_ceiling) if agr.ef_ceiling is not None else None,
        mean_shift_predicted=agr.mean_shift_predicted,
        mean_shift_observed=agr.mean_shift_observed,
        oos_predicted=agr.oos_predicted, oos_observed=agr.oos_observed,
        failed_fraction_predicted=agr.failed_fraction_predicted,
        failed_fraction_observed=agr.failed_fraction_observed)
    # Perfect-model control: held-out true data in place of the samples.
    hold, ref = split
    cal0 = fit(ref, hold)
    q0 = measurement.measure(cal0.kernel.perturb(ref, rng),
                             "kernel-perturbed training trajectories (perfect-model control)")
    h0 = recovered_histogram(q0, lo, hi, bins)
    out["perfect_model"] = dict(
        sigma=cal0.scale,
        tv_predicted=total_variation(h0.probs, p) if h0.n_finite else None,
        note="the same calibration fed held-out true data (a perfect model): the drift it "
             "predicts there is what NN-distance calibration predicts for no error at all")
    return out, q_hat_values, notes


def _sensitivity(measurement, train, train_values, edges, kernel_sigma, rng) -> dict:
    """Local gain ``|dM/dx|`` per bin by central differences along random directions."""
    bins = edges.size - 1
    finite = np.isfinite(train_values)
    idx = np.full(train_values.size, -1)
    inside = finite & (train_values >= edges[0]) & (train_values <= edges[-1])
    idx[inside] = np.clip(np.searchsorted(edges, train_values[inside], side="right") - 1,
                          0, bins - 1)
    chosen, owner = [], []
    for j in range(bins):
        members = np.flatnonzero(idx == j)
        if members.size:
            pick = rng.choice(members, min(_SENS_PER_BIN, members.size), replace=False)
            chosen.append(pick)
            owner.append(np.full(pick.size, j))
    scale = float(np.std(train))
    h = _SENS_STEP * (scale if scale > 0 else 1.0)
    gain = np.full(bins, np.nan)
    median_gain = np.full(bins, np.nan)
    count = np.zeros(bins, dtype=int)
    failed = np.full(bins, np.nan)
    if chosen:
        rows = np.concatenate(chosen)
        owners = np.repeat(np.concatenate(owner), _SENS_DRAWS)
        x = np.repeat(train[rows], _SENS_DRAWS, axis=0)
        e = h * rng.standard_normal(x.shape)
        what = "slightly perturbed training trajectories (sensitivity)"
        g = 0.5 * (measurement.measure(x + e, what) - measurement.measure(x - e, what)) / h
        per_traj = g.reshape(-1, _SENS_DRAWS)
        traj_owner = owners[::_SENS_DRAWS]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            traj_gain = np.sqrt(np.nanmean(per_traj ** 2, axis=1))
            for j in range(bins):
                mine = owners == j
                if not mine.any():
                    continue
                count[j] = int((traj_owner == j).sum())
                ok = np.isfinite(g[mine])
                failed[j] = float(1.0 - ok.mean())
                if ok.any():
                    gain[j] = float(np.sqrt(np.mean(g[mine][ok] ** 2)))
                    median_gain[j] = float(np.nanmedian(traj_gain[traj_owner == j]))
    overall = float(np.nanmedian(gain)) if np.isfinite(gain).any() else None
    order = [int(j) for j in np.argsort(-np.where(np.isfinite(gain), gain, -np.inf))
             if np.isfinite(gain[j])][:_TOP_BINS]
    top = [dict(bin=j, lo=float(edges[j]), hi=float(edges[j + 1]), gain=float(gain[j]),
                ratio_to_median=(float(gain[j] / overall) if overall else None))
           for j in order]
    spread = None if kernel_sigma is None else kernel_sigma * gain
    return dict(step=h, draws=_SENS_DRAWS, gain=gain, median_trajectory_gain=median_gain,
                n_trajectories=count, failed_fraction=failed, median_gain=overall, top_bins=top,
                spread_at_kernel_sigma=spread)


# ---------------------------------------------------------------------------------------------
# The result
# ---------------------------------------------------------------------------------------------


@dataclass
class AuditResult:
    """What :func:`audit` returns (the practitioner's audit; README).

    ``report`` is the JSON document (plain types, ``None`` for undefined numbers) whose fields the
    README documents; ``summary()`` is the terminal summary, ``figure()`` the figure,
    ``save(out)`` writes ``audit.json`` and ``audit.png`` atomically. ``paths`` lists the files
    written by :func:`audit` (empty without ``out``). Indexing reads the report:
    ``result["distances"]["tv"]["value"]``.
    """

    report: dict
    paths: list = field(default_factory=list)

    def __getitem__(self, key):
        return self.report[key]

    def to_dict(self) -> dict:
        return self.report

    def to_json(self) -> str:
        return json.dumps(self.report, indent=1, allow_nan=False) + "\n"

    @property
    def drift(self) -> bool:
        return bool(self.report["verdict"]["drift"])

    def summary(self) -> str:
        return format_summary(self.report)

    def __str__(self) -> str:
        return self.summary()

    def _repr_pretty_(self, printer, cycle):
        printer.text(self.summary())

    def figure(self):
        return plot_audit(self.report)

    def save(self, out) -> list:
        """Write ``audit.png`` then ``audit.json`` (the record, last) into folder ``out``."""
        from ._io import write_atomic, write_text_atomic

        folder = _check_out(out)
        png = io.BytesIO()
        self.figure().savefig(png, format="png", dpi=110)
        json_text = self.to_json()
        write_atomic(folder / PNG_NAME, lambda handle: handle.write(png.getvalue()))
        write_text_atomic(folder / JSON_NAME, json_text)
        return [folder / JSON_NAME, folder / PNG_NAME]


def _fmt(v, spec: str = ".4f", none: str = "n/a") -> str:
    return none if v is None else format(v, spec)


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _interval(ci) -> str:
    if ci is None or ci[0] is None or ci[1] is None:
        return "[no interval]"
    return f"[{ci[0]:.4g}, {ci[1]:.4g}]"


def _wrap(line: str, width: int = SUMMARY_WIDTH, indent: str = "    ") -> list[str]:
    import textwrap

    if len(line) <= width:
        return [line]
    lead = line[:len(line) - len(line.lstrip())]
    return textwrap.wrap(line, width=width, initial_indent="",
                         subsequent_indent=lead + indent) or [line]


def format_summary(report: dict) -> str:
    """The terminal summary of an audit report (lines of at most 88 characters).

    The practitioner's audit; README. ``report`` is :attr:`AuditResult.report` or the JSON
    document read back from ``audit.json``.
    """
    inp, rec, dist = report["inputs"], report["recovery"], report["distances"]
    ref = inp["prior"]
    meas = inp["measurement"]
    unit = f", {meas['units']}" if meas.get("units") else ""
    what = (f"task {meas['name']} ({meas['control']}{unit})" if meas["kind"] == "task"
            else f"function {meas['name']}")
    n_s, n_t = inp["samples"]["shape"], inp["train"]["shape"]
    ref_text = {"data": "the training set's recovered distribution"}.get(
        ref["kind"], f"{ref['kind']} prior")
    lines = [
        f"physmis audit: {n_s[0]} samples vs {n_t[0]} training trajectories "
        f"(L={n_s[1]}, d={n_s[2]})",
        f"measurement: {what}",
        f"reference p: {ref_text} on [{ref['lo']:.6g}, {ref['hi']:.6g}], "
        f"{inp['bins']} bins",
    ]
    s, t = rec["samples"], rec["train"]
    lines.append(f"recovery: failed {_pct(s['failed_fraction'])} (train "
                 f"{_pct(t['failed_fraction'])}); out of range {_pct(s['out_of_range'])} "
                 f"(below {_pct(s['below'])}, above {_pct(s['above'])})")
    null = report["null"]
    tv = dist["tv"]
    lines.append(f"TV {tv['value']:.4f} {_interval(tv['ci'])} (95%)  vs null99 "
                 f"{null['tv_q99']:.4f} ({null['kind'].split(':')[0]})")
    lines.append(f"  TV with failures {dist['tv_with_failures']:.4f}; W1 "
                 f"{_fmt(dist['w1']['value'], '.4g')} {_interval(dist['w1']['ci'])}; "
                 f"JS {dist['js']:.4f} bits")
    sh = report["split_half"]
    if sh["tv"] is not None:
        lines.append(f"split half: TV {sh['tv']:.4f} between halves (null99 "
                     f"{sh['null_tv99']:.4f}); shift pattern Pearson "
                     f"{_fmt(sh['shift_pearson'], '.2f')}")
    lines.append(f"verdict: {report['verdict']['text']}")
    ch = report["checks"]
    lines.append(f"c-free checks vs {ch['n_heldout']} held-out training trajectories: "
                 + ("passed" if ch["passed"] else "FAILED"))
    parts = []
    if ch["inside"]["applies"]:
        parts.append(f"in bounds {_pct(ch['inside']['samples'])}")
    if ch["residual"]["applies"]:
        parts.append(f"rule residual {_pct(ch['residual']['samples'])} (true "
                     f"{_pct(ch['residual']['reference'])})")
    parts.append(f"NN distance ratio {_fmt(ch['nn']['ratio'], '.2f')}")
    lines.append("  " + "; ".join(parts))
    lines.extend(f"  failed: {reason}" for reason in ch["failed"])
    k = report["kernel"]
    if k is None:
        lines.append("kernel: skipped (--no-kernel)")
    else:
        pred = k["predicted"]
        lines.append(f"kernel: Gaussian(sigma={k['sigma']:.4g}) calibrated on NN distances "
                     "(no c)")
        lines.append(f"  predicted TV {_fmt(pred['tv_to_reference'])}, out of range "
                     f"{_pct(pred['out_of_range'])} (observed {_pct(s['out_of_range'])})")
        a = k["agreement"]
        if a is not None:
            ceiling = a["ef_ceiling"][0] if a["ef_ceiling"] else None
            lines.append(f"  inside Pearson {_fmt(a['inside_pearson'], '.2f')}, all bins "
                         f"{_fmt(a['pearson'], '.2f')}, EF {_fmt(a['explained_fraction'], '.2f')}"
                         f" (ceiling {_fmt(ceiling, '.2f')}), shift sign "
                         + ("agrees" if a["sign_agree"] else "DISAGREES"))
        pm = k["perfect_model"]
        if pm is not None:
            lines.append(f"  perfect-model control: true data would get sigma {pm['sigma']:.4g}"
                         f" and predicted TV {_fmt(pm['tv_predicted'])}")
            if (pm["tv_predicted"] is not None and pred["tv_to_reference"] is not None
                    and pm["tv_predicted"] >= 0.5 * pred["tv_to_reference"]):
                lines.append("  caveat: true data get nearly the same kernel; its prediction "
                             "is weak evidence")
    sens = report["sensitivity"]
    if sens["top_bins"]:
        flat = all(b["ratio_to_median"] is not None and b["ratio_to_median"] < _FLAT_GAIN
                   for b in sens["top_bins"])
        lines.append(f"most sensitive bins (local gain |dM/dx|; median over bins "
                     f"{_fmt(sens['median_gain'], '.3g')})"
                     + (": nearly uniform, no bin stands out" if flat else ":"))
        for b in sens["top_bins"]:
            ratio = "" if b["ratio_to_median"] is None else f" ({b['ratio_to_median']:.1f}x)"
            lines.append(f"  [{b['lo']:.4g}, {b['hi']:.4g}]  gain {b['gain']:.3g}{ratio}")
    for note in report["notes"]:
        lines.append(f"note: {note}")
    out = []
    for line in lines:
        out.extend(_wrap(line))
    return "\n".join(out)


def _verdict(tv, tv_failed, null99, n_failed, n) -> dict:
    ratio = tv_failed / max(null99, 1e-12)
    drift = bool(tv_failed > null99)
    failed = f"; {n_failed} of {n} recoveries failed" if n_failed else ""
    if not drift:
        text = "no drift detectable: TV within the finite-sample null" + failed
    elif tv <= null99:
        text = (f"drift from failed recoveries: the finite values are within the null, but "
                f"{n_failed} of {n} failed ({ratio:.1f}x the null with failures)")
    else:
        text = f"drift: TV is {ratio:.1f}x the null's 99th percentile" + failed
    return dict(drift=drift, ratio_to_null=ratio, text=text)


# ---------------------------------------------------------------------------------------------
# The figure
# ---------------------------------------------------------------------------------------------

def plot_audit(report: dict):
    """The audit's figure from its report (the practitioner's audit; README).

    Four panels: the recovered distribution against the reference with the null band and the
    kernel's prediction; the per-bin shift ``q - p`` against the null; the local gain per bin;
    the c-free nearest-neighbour check. Returns a ``matplotlib.figure.Figure`` (not attached to
    pyplot, so nothing is shown or changed in a running session).
    """
    from matplotlib.figure import Figure

    h, inp = report["histogram"], report["inputs"]
    edges = np.asarray(h["edges"], dtype=float)
    width = float(edges[1] - edges[0])
    centres = np.concatenate([[edges[0] - width], 0.5 * (edges[1:] + edges[:-1]),
                              [edges[-1] + width]])
    steps = np.concatenate([[centres[0] - width / 2], centres + width / 2])

    def arr(v):
        return np.array([np.nan if x is None else x for x in v], dtype=float)

    p, q = arr(h["reference"]), arr(h["samples"])
    lower, upper = arr(h["null_band"][0]), arr(h["null_band"][1])
    meas = inp["measurement"]
    xlabel = f"recovered {meas['control']}" + (f" [{meas['units']}]" if meas.get("units") else "")
    fig = Figure(figsize=(8, 7.2), layout="constrained")
    axes = fig.subplots(2, 2)
    verdict = report["verdict"]
    fig.suptitle(f"physmis audit: {verdict['text']}", fontsize=11)

    ax = axes[0, 0]
    ax.fill_between(steps, np.append(lower, lower[-1]), np.append(upper, upper[-1]), step="post",
                    color="0.6", alpha=0.35, lw=0, label="null band (99%)")
    ref_label = "training set p" if inp["prior"]["kind"] == "data" else "prior p"
    ax.stairs(p, steps, color="k", lw=1.5, label=ref_label)
    bars = ax.bar(centres, q, width=0.85 * width, color="C0", alpha=0.75,
                  label=f"samples q (n={report['recovery']['samples']['n']})")
    for outer in (bars[0], bars[-1]):
        outer.set_hatch("//")
    k = report["kernel"]
    if k is not None and k["predicted"]["q"] is not None:
        ax.stairs(arr(k["predicted"]["q"]), steps, color="C3", lw=1.6,
                  label="kernel prediction q_hat")
    for edge in (edges[0], edges[-1]):
        ax.axvline(edge, color="0.3", lw=0.8, ls=":")
    tv = report["distances"]["tv"]["value"]
    ax.set_title(f"recovered distribution:\nTV {tv:.3f} vs null99 "
                 f"{report['null']['tv_q99']:.3f}", fontsize=10)
    ax.set_xlabel(f"{xlabel} (hatched: outside range)")
    ax.set_ylabel("probability per bin")
    ax.set_ylim(0, 1.3 * np.nanmax(np.concatenate([upper, q, p])))
    ax.legend(fontsize=9, frameon=False, loc="upper center", ncol=2)

    ax = axes[0, 1]
    shift = q - p
    ax.fill_between(steps, np.append(lower - p, lower[-1] - p[-1]),
                    np.append(upper - p, upper[-1] - p[-1]), step="post", color="0.6",
                    alpha=0.35, lw=0, label="null band (99%)")
    ax.bar(centres, shift, width=0.85 * width, color=np.where(shift >= 0, "C3", "C0"),
           alpha=0.75, label="q - p")
    if k is not None and k["predicted"]["q"] is not None:
        ax.stairs(arr(k["predicted"]["q"]) - p, steps, color="k", lw=1.4, ls="--",
                  label="kernel q_hat - p")
    ax.axhline(0, color="0.3", lw=0.8)
    title = "where mass moved"
    if k is not None and k["agreement"] is not None and k["agreement"]["inside_pearson"]:
        title += f"\n(kernel inside Pearson {k['agreement']['inside_pearson']:.2f})"
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("shift per bin")
    low, high = ax.get_ylim()
    ax.set_ylim(low, high + 0.3 * (high - low))
    ax.legend(fontsize=9, frameon=False, loc="upper center", ncol=2)

    ax = axes[1, 0]
    sens = report["sensitivity"]
    gain = arr(sens["gain"])
    top = {b["bin"] for b in sens["top_bins"]}
    colours = ["C1" if j in top else "C2" for j in range(gain.size)]
    ax.bar(centres[1:-1], np.nan_to_num(gain), width=0.85 * width, color=colours)
    finite = gain[np.isfinite(gain) & (gain > 0)]
    if finite.size and finite.max() > 30 * finite.min():
        ax.set_yscale("log")
    flat = bool(sens["top_bins"]) and all(
        b["ratio_to_median"] is not None and b["ratio_to_median"] < _FLAT_GAIN
        for b in sens["top_bins"])
    ax.set_title("where the recovery is most sensitive\n(orange: top bins"
                 + ("; nearly uniform)" if flat else ")"), fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("local gain |dM/dx|")

    ax = axes[1, 1]
    ch = report["checks"]
    nh = ch["nn"]["hist"]
    nn_steps = np.asarray(nh["edges"], dtype=float)
    ax.stairs(arr(nh["reference"]), nn_steps, color="k", lw=1.5, label="held-out training data")
    ax.stairs(arr(nh["samples"]), nn_steps, color="C0", lw=1.5, label="samples")
    ax.set_xlabel("distance to the nearest training trajectory")
    ax.set_ylabel("density")
    status = "passed" if ch["passed"] else "failed: " + "; ".join(ch["failed"])
    ratio = ch["nn"]["ratio"]
    ax.set_title(f"c-free checks {status[:60]}\nNN ratio "
                 f"{'n/a' if ratio is None else format(ratio, '.2f')}", fontsize=10)
    ax.legend(fontsize=9, frameon=False)
    return fig


# ---------------------------------------------------------------------------------------------
# The audit
# ---------------------------------------------------------------------------------------------


def audit(train, samples, *, task=None, measure=None, prior="data", control_range=None,
          bins: int = 20, seed: int = 0, kernel: bool = True, out=None, n_boot: int = 200,
          n_null: int = 500, progress: bool | None = None) -> AuditResult:
    """Audit a model's samples against its training set (the practitioner's audit; README).

    Parameters
    ----------
    train, samples : arrays ``(n, L, d)`` or paths to ``.npy``/``.npz`` files (``FILE.npz:KEY``
        names an array of a ``.npz`` holding several); same ``L`` and ``d``, finite values.
    task : a task key of the store (``physmis_edu.zoo.catalog.TASKS``: ``'logistic-chaotic'``,
        ...) or a ``Task``; its ``recover`` is the measurement, and ``L``, ``d`` must match it.
    measure : instead of ``task``, a function ``(n, L, d) -> (n,)`` (``NaN`` for failures), or
        its name ``'module:function'`` / ``'path/to/file.py:function'``.
    prior : ``'data'`` (default: the training set's recovered distribution), ``'task'`` (the
        task's own prior), ``'uniform:LO:HI'``, or a ``Prior``.
    control_range : ``(lo, hi)`` or ``'LO:HI'``, the histogram's range for ``prior='data'``;
        default: the task's range if every training value lies in it, else the training
        values' minimum and maximum.
    bins : equal bins on the range (plus one overflow bin each side).
    seed : seeds every random step (held-out split, bootstrap, null, kernel, sensitivity).
    kernel : calibrate the white-noise kernel and score its prediction (the slowest step).
    out : folder to write ``audit.json`` and ``audit.png`` into (checked before any work);
        ``None`` writes nothing.
    n_boot, n_null : bootstrap resamples and null draws.
    progress : tqdm bars on stderr; ``None``: when stderr is a terminal (``PHYSMIS_PROGRESS=0``
        turns them off).

    Raises :class:`AuditInputError` (a ``ValueError`` naming the argument) for bad input: a
    missing or unreadable file, mismatched shapes, NaN or infinite values, an unknown task or
    prior, a measure that does not import or fails on every sample, an unwritable ``out``.
    Nothing is written unless the audit completes; the JSON file is written last.
    """
    started = time.perf_counter()
    try:
        bins = check_positive_int(bins, "bins", minimum=2)
    except ValueError as err:
        raise AuditInputError("bins", str(err)) from err
    try:
        seed = check_seed(seed)
    except ValueError as err:
        raise AuditInputError("seed", str(err)) from err
    for name, v in (("n_boot", n_boot), ("n_null", n_null)):
        try:
            check_positive_int(v, name, minimum=10)
        except ValueError as err:
            raise AuditInputError(name, str(err)) from err
    if not isinstance(kernel, bool):
        raise AuditInputError("kernel", f"expected True or False; got {kernel!r}")
    measurement = _resolve_measurement(task, measure)
    prior_kind, prior_obj = _parse_prior(prior, measurement)
    if control_range is not None:
        if prior_kind != "data":
            raise AuditInputError("control_range", "applies to prior='data' only (a named "
                                                   "prior carries its own range)")
        if isinstance(control_range, str):
            control_range = _parse_pair(control_range, "control_range", "'LO:HI'")
        else:
            try:
                lo, hi = (float(v) for v in control_range)
            except (TypeError, ValueError) as err:
                raise AuditInputError("control_range", f"expected (lo, hi); got "
                                                       f"{control_range!r}") from err
            control_range = _parse_pair(f"{lo}:{hi}", "control_range", "(lo, hi)")
    train, train_source = _load_trajectories(train, "train")
    samples, samples_source = _load_trajectories(samples, "samples")
    for name, x in (("train", train), ("samples", samples)):
        if x.shape[0] < _MIN_TRAJECTORIES:
            raise AuditInputError(name, f"needs at least {_MIN_TRAJECTORIES} trajectories; got "
                                        f"{x.shape[0]}")
    if samples.shape[1:] != train.shape[1:]:
        raise AuditInputError("samples", f"trajectories of shape (L={samples.shape[1]}, "
                                         f"d={samples.shape[2]}) do not match the training "
                                         f"set's (L={train.shape[1]}, d={train.shape[2]})")
    if measurement.task is not None and measurement.length:
        want = (measurement.length, measurement.channels)
        if train.shape[1:] != want:
            raise AuditInputError("task", f"{measurement.name} measures trajectories of shape "
                                          f"(n, L={want[0]}, d={want[1]}); the data have "
                                          f"L={train.shape[1]}, d={train.shape[2]}")
    folder = _check_out(out) if out is not None else None

    disabled = progress_disabled(progress)
    from tqdm import tqdm

    steps = ["measure", "distances", "split half", "c-free checks", "kernel", "sensitivity"]
    if folder is not None:
        steps.append("write")
    bar = tqdm(total=len(steps), desc="audit", file=sys.stderr, disable=disabled, leave=False)
    timings = {}
    clock = [time.perf_counter()]

    def done(step):
        now = time.perf_counter()
        timings[step] = now - clock[0]
        clock[0] = now
        bar.set_postfix_str(step)
        bar.update()

    children = np.random.SeedSequence(seed).spawn(6)
    rngs = [np.random.default_rng(s) for s in children]
    notes = []
    try:
        train_values, train_reasons = measurement.recover(train, "the training set")
        values, reasons = measurement.recover(samples, "the samples")
        if np.isnan(values).all():
            raise AuditInputError("measure" if measurement.kind == "function" else "samples",
                                  f"the measurement ({measurement.name}) failed on every one of "
                                  f"the {values.size} samples ({_reasons(reasons)}); there is "
                                  "no recovered distribution to audit")
        if np.isnan(train_values).all():
            raise AuditInputError("measure" if measurement.kind == "function" else "train",
                                  f"the measurement ({measurement.name}) failed on every one of "
                                  f"the {train_values.size} training trajectories "
                                  f"({_reasons(train_reasons)})")
        lo, hi, range_source = _choose_range(prior_kind, prior_obj, control_range, measurement,
                                             train_values)
        if prior_kind == "data" and range_source == "training values":
            notes.append(f"range [{lo:.6g}, {hi:.6g}] from the training values' minimum and "
                         "maximum")
        done("measure")

        from .metrics import bin_edges, recovered_histogram, total_variation

        edges = bin_edges(lo, hi, bins)
        h_train = recovered_histogram(train_values, lo, hi, bins)
        if prior_kind == "data":
            cmp = _compare_to_data(values, train_values, lo, hi, bins, n_null, n_boot, rngs[0])
            prior_for_kernel = _EmpiricalPrior(edges, h_train.probs[1:-1])
            if h_train.out_of_support > 0:
                notes.append(f"{h_train.out_of_support:.1%} of the training values lie outside "
                             "the range; the kernel's scores use the training histogram inside "
                             "it")
        else:
            cmp = _compare_to_prior(values, prior_obj, bins, n_null, n_boot, rngs[0])
            prior_for_kernel = prior_obj
        for name, note in cmp["ci_notes"].items():
            notes.append(f"no {name} interval: {note}")
        p = cmp["p"]
        train_vs_p = None
        if prior_kind != "data":
            from .metrics import null_quantile

            train_vs_p = dict(tv=total_variation(p, h_train.probs),
                              null_tv99=null_quantile(prior_obj, h_train.n_finite, bins,
                                                      n_rep=n_null, rng=rngs[0]))
        done("distances")

        split = _split_half(values, p, lo, hi, bins, n_null, rngs[1])
        done("split half")

        checks = _checks(measurement, train, samples, rngs[2])
        done("c-free checks")

        kernel_report, kernel_sigma = None, None
        if kernel:
            kernel_report, _, knotes = _kernel(measurement, prior_for_kernel, p, lo, hi, bins,
                                               train, samples, values, checks["_split"], seed,
                                               rngs[3])
            kernel_sigma = kernel_report["sigma"]
            notes.extend(f"kernel: {n}" for n in knotes)
        done("kernel")

        sensitivity = _sensitivity(measurement, train, train_values, edges, kernel_sigma,
                                   rngs[4])
        done("sensitivity")

        hist = cmp["hist"]
        ci_level = 0.95
        report = {
            "schema": SCHEMA,
            "version": VERSION,
            "created_by": f"physmis_edu {_package_version()}",
            "inputs": {
                "train": {"source": train_source, "shape": list(train.shape)},
                "samples": {"source": samples_source, "shape": list(samples.shape)},
                "measurement": {"kind": measurement.kind, "name": measurement.name,
                                "control": measurement.control_name, "units": measurement.units},
                "prior": {"kind": prior_kind, "spec": _prior_spec(prior), "lo": lo, "hi": hi,
                          "range_source": range_source},
                "bins": bins, "seed": seed, "n_boot": n_boot, "n_null": n_null,
                "kernel": kernel,
            },
            "histogram": {
                "edges": edges, "reference": p, "samples": cmp["q"], "train": h_train.probs,
                "shift": cmp["q"] - p, "null_band": [cmp["band"][0], cmp["band"][1]],
                "counts_samples": hist.counts, "counts_train": h_train.counts,
            },
            "recovery": {
                "samples": _recovery_summary(values, reasons, lo, hi),
                "train": {**_recovery_summary(train_values, train_reasons, lo, hi),
                          "vs_prior": train_vs_p},
            },
            "distances": {
                "tv": {"value": cmp["tv"], "ci": list(cmp["tv_ci"]),
                       "ci_note": cmp["ci_notes"].get("TV")},
                "tv_with_failures": cmp["tv_failed"],
                "w1": {"value": cmp["w1"], "ci": list(cmp["w1_ci"]),
                       "ci_note": cmp["ci_notes"].get("W1")},
                "js": cmp["js"],
                "ci_level": ci_level, "ci_method": cmp["ci_method"],
            },
            "null": {"kind": cmp["null_kind"], "tv_q99": cmp["null99"], "n_rep": n_null},
            "split_half": split,
            "verdict": _verdict(cmp["tv"], cmp["tv_failed"], cmp["null99"], hist.n_failed,
                                hist.n_total),
            "checks": checks,
            "kernel": kernel_report,
            "sensitivity": sensitivity,
            "notes": notes,
            "timings_s": timings,
        }
        timings["total"] = time.perf_counter() - started
        result = AuditResult(jsonable(report))
        if folder is not None:
            try:
                result.paths = result.save(folder)
            except OSError as err:
                raise AuditInputError("out", f"cannot write into {folder} ({type(err).__name__}: "
                                             f"{err.strerror or err})") from err
            done("write")
    finally:
        bar.close()
    return result


def _prior_spec(prior) -> str:
    return "data" if prior is None else prior if isinstance(prior, str) else repr(prior)


def _reasons(reasons: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in reasons.items()) or "NaN"


def _choose_range(prior_kind, prior_obj, control_range, measurement, train_values):
    if prior_kind != "data":
        return float(prior_obj.lo), float(prior_obj.hi), "prior"
    if control_range is not None:
        return control_range[0], control_range[1], "control_range"
    finite = train_values[np.isfinite(train_values)]
    task = measurement.task
    if task is not None and hasattr(task, "lo"):
        if finite.min() >= task.lo and finite.max() <= task.hi:
            return float(task.lo), float(task.hi), "task"
    lo, hi = float(finite.min()), float(finite.max())
    if not lo < hi:
        raise AuditInputError("train", f"every training trajectory recovers to {lo:g}: no range "
                                       "to bin; give control_range (--range LO:HI) or a named "
                                       "prior")
    return lo, hi, "training values"


def _package_version() -> str:
    from . import __version__

    return __version__
