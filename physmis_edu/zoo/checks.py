"""Checks that never use the control: does each sample look right? (introduced in Chapter 5)

Three statistics of a set of trajectories, each judged against fresh true data of the same task:

1. ``inside``: the fraction of trajectories whose states all stay inside the task's state bounds;
2. ``residual``: the median relative residual of the task's rule refitted per trajectory (zero on
   true data up to rounding), or of the task's c-free statistic where it has no exact rule (the
   maze's path roughness, which true paths do not bring to zero);
3. ``nn_ratio``: the median distance to the nearest training trajectory over the same for fresh
   true data. Much larger means off the data; much smaller means copied.

The pass marks are Chapter 5's: at least 99% inside, a median residual of at most 10% (or, where
fresh true data sit above that, at most 1.5 times theirs), and a nearest-neighbour ratio within
a factor 1.5 either way.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_trajectories

INSIDE_MIN = 0.99
RESIDUAL_MAX = 0.10
NN_RATIO_MAX = 1.5


def state_bounds(task):
    """The interval every true state of ``task`` lies in, or ``None`` where the task has none."""
    from ..tasks import LogisticMap

    if isinstance(task, LogisticMap):
        return 0.0, 1.0
    return None


def relative_residual(task, x) -> np.ndarray:
    """Per trajectory: the RMS residual of its own best-fitting rule, relative (Chapter 5).

    For the logistic map: ``x_{t+1} - r_hat x_t (1 - x_t)`` with ``r_hat`` the trajectory's own
    least-squares fit, as an RMS over the RMS step size. Other tasks use their c-free rule
    residual (:meth:`physmis_edu.tasks.Task.c_free_residual`; ``NaN`` where none exists).
    """
    from ..tasks import LogisticMap

    x = check_trajectories(x, "x", allow_nan=True)
    if isinstance(task, LogisticMap):
        x1 = x[:, :, 0]
        f = x1[:, :-1] * (1.0 - x1[:, :-1])
        r_hat = np.sum(x1[:, 1:] * f, axis=1) / np.maximum(np.sum(f * f, axis=1), 1e-12)
        residual = x1[:, 1:] - r_hat[:, None] * f
        step = np.mean(np.diff(x1, axis=1) ** 2, axis=1)
        return np.sqrt(np.mean(residual**2, axis=1) / np.maximum(step, 1e-24))
    rule = task.c_free_residual()
    return np.full(x.shape[0], np.nan) if rule is None else rule(x)


def statistics(task, x, train) -> dict:
    """``inside``, ``residual`` (median) and ``nn`` (median NN distance to ``train``) of ``x``."""
    from ..kernels import nn_distances

    x = check_trajectories(x, "x", allow_nan=True)
    bounds = state_bounds(task)
    finite = np.isfinite(x).all(axis=(1, 2))
    if bounds is None:
        inside = float(finite.mean())
    else:
        inside = float((finite & ((x >= bounds[0]) & (x <= bounds[1])).all(axis=(1, 2))).mean())
    residual = float(np.nanmedian(relative_residual(task, x)))
    nn = float(np.median(nn_distances(x[finite], train))) if finite.any() else float("nan")
    return dict(inside=inside, residual=residual, nn=nn)


def sample_checks(task, samples, train, fresh, reference=None) -> dict:
    """The c-free checks of ``samples`` against fresh true data, with pass marks (Chapter 5).

    Returns a dict with the model's ``inside``, ``residual``, ``nn`` and ``nn_ratio``, the same
    statistics of ``fresh`` under ``reference``, ``failed`` (readable reasons, empty if all pass)
    and ``passed``. ``reference``: ``statistics(task, fresh, train)`` when already computed
    (it does not depend on the samples).
    """
    model = statistics(task, samples, train)
    if reference is None:
        reference = statistics(task, fresh, train)
    ratio = model["nn"] / reference["nn"]
    failed = []
    if model["inside"] < INSIDE_MIN:
        failed.append(f"only {model['inside']:.1%} of trajectories stay in the state bounds")
    # A statistic that true data do not bring to zero is judged against theirs.
    residual_max = max(RESIDUAL_MAX, NN_RATIO_MAX * reference["residual"])
    if not model["residual"] <= residual_max:
        failed.append(f"median rule residual {model['residual']:.1%} > {residual_max:.0%}")
    if not ratio <= NN_RATIO_MAX:
        failed.append(f"{ratio:.2f}x farther from the training data than fresh data")
    elif ratio < 1 / NN_RATIO_MAX:
        closer = f"{1 / ratio:.2f}x closer to" if ratio > 0 else "exact copies of"
        failed.append(f"{closer} the training data than fresh data (copying)")
    return dict(**model, nn_ratio=float(ratio), reference=reference, failed=failed,
                passed=not failed)
