"""Calibration of a kernel from c-free statistics (Chapter 6).

A kernel's parameters are chosen by making kernel-perturbed training data look, by statistics of
the trajectories alone, like a model's samples: the distribution of nearest-training-neighbour
distances (:func:`calibrate`, one scale, Wasserstein-1) and, where the task has a rule, the
distribution of its physical residual (:func:`fit_by_statistics`, a grid of parameters, both
statistics). The control ``c`` and the task's recovery are never used, so a kernel's prediction
is not fitted to the answer.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from itertools import product

import numpy as np

from .._validation import (as_rng, check_nonnegative, check_positive_int, check_trajectories,
                           check_values)
from ..metrics import wasserstein_distance
from ._memo import digest, memo
from .neighbours import nn_distances

__all__ = ["Calibration", "calibrate", "StatisticsFit", "fit_by_statistics", "rule_residual"]


# ---------------------------------------------------------------------------------------------
# One scale from nearest-neighbour distances
# ---------------------------------------------------------------------------------------------

@dataclass
class Calibration:
    """Result of :func:`calibrate` (Chapter 6): the kernel at the chosen scale and how it was
    chosen."""

    kernel: object
    scale: float
    grid: np.ndarray
    losses: np.ndarray
    target_median: float
    fitted_median: float
    at_edge: bool

    def __str__(self) -> str:
        edge = "  (at the edge of the grid: widen it)" if self.at_edge else ""
        return (f"calibrated {self.kernel!r}: scale {self.scale:.4g}, W1 of NN distances "
                f"{self.losses.min():.3g}; median NN distance model {self.target_median:.4g} "
                f"vs kernel {self.fitted_median:.4g}{edge}")


def calibrate(kernel_factory, train, samples, grid=None, rng=None, n_perturb: int = 1000,
              refine: bool = True) -> Calibration:
    """Choose a kernel's scale so that kernel-perturbed training data sit as far from the
    training set as the model's samples do (Chapter 6).

    The statistic is the distribution of nearest-training-neighbour distances: the scale
    minimises the Wasserstein-1 distance between that distribution for
    ``kernel_factory(scale).perturb(train)`` and for ``samples``. Only trajectories enter: the
    control ``c`` is never read, so the kernel's prediction is not fitted to the answer.

    Parameters
    ----------
    kernel_factory : callable ``scale -> kernel``, e.g. ``Gaussian`` or
        ``lambda s: Smooth(s, ell=4)``.
    train, samples : trajectories ``(n, L, d)``: the training set and a model's samples.
    grid : scales to try; default 31 values geometric from ``1e-3`` to ``1`` times the data's
        std, then (``refine``) a golden-section search between the best point's neighbours.
    n_perturb : number of training trajectories perturbed per trial (a random subset).

    The same random numbers are used at every scale, so the loss is a smooth function of it.
    A perturbed trajectory's nearest neighbour may be its own source; that is intended (a model
    sample close to a training trajectory sees the same).
    """
    if not callable(kernel_factory):
        raise ValueError("kernel_factory must be a callable scale -> kernel (e.g. Gaussian)")
    train = check_trajectories(train, "train")
    samples = check_trajectories(samples, "samples", length=train.shape[1],
                                 channels=train.shape[2])
    n_perturb = check_positive_int(n_perturb, "n_perturb")
    rng = as_rng(rng)
    target = nn_distances(samples, train)
    keep = rng.choice(train.shape[0], min(n_perturb, train.shape[0]), replace=False)
    subset = train[np.sort(keep)]
    seed = int(rng.integers(2 ** 63))

    def distances(scale):
        kernel = kernel_factory(float(scale))
        if not hasattr(kernel, "perturb"):
            raise ValueError("kernel_factory(scale) must return a kernel with a "
                             "perturb(x, rng) method")
        return nn_distances(kernel.perturb(subset, np.random.default_rng(seed)), train)

    def loss(scale):
        return wasserstein_distance(distances(scale), target)

    default_grid = grid is None
    if default_grid:
        grid = float(np.std(train)) * np.geomspace(1e-3, 1.0, 31)
    grid = check_values(grid, "grid")
    if (grid < 0).any():
        raise ValueError("grid must contain scales >= 0")
    grid = np.unique(grid)
    losses = np.array([loss(s) for s in grid])
    best = int(np.argmin(losses))
    at_edge = grid.size > 1 and best in (0, grid.size - 1) and losses[best] > 0
    scale = float(grid[best])
    if refine and 0 < best < grid.size - 1:
        scale = _golden_section(loss, float(grid[best - 1]), float(grid[best + 1]),
                                float(grid[best]), losses[best])
    if at_edge:
        warnings.warn(f"calibrate: best scale {scale:g} is at the edge of the grid "
                      f"[{grid[0]:g}, {grid[-1]:g}]; the fit may need a wider grid", stacklevel=2)
    fitted = distances(scale)
    return Calibration(kernel=kernel_factory(scale), scale=scale, grid=grid, losses=losses,
                       target_median=float(np.median(target)),
                       fitted_median=float(np.median(fitted)), at_edge=bool(at_edge))


def _golden_section(f, a: float, b: float, x_best: float, f_best: float, iters: int = 12) -> float:
    ratio = 0.5 * (np.sqrt(5.0) - 1.0)
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = f(d)
    candidates = [(f_best, x_best), (fc, c), (fd, d)]
    return float(min(candidates)[1])


# ---------------------------------------------------------------------------------------------
# A grid of parameters from nearest-neighbour distances and the physical residual
# ---------------------------------------------------------------------------------------------

def rule_residual(task):
    """A c-free physical residual ``x -> (n,)`` for a task's rule, or ``None`` if it has none
    (Chapter 6): ``task.c_free_residual()``.

    Each task states the form of its own rule (:meth:`physmis_edu.tasks.Task.c_free_residual`);
    the residual never calls the task's ``measure`` or ``recover`` and never sees ``c``.
    """
    hook = getattr(task, "c_free_residual", None)
    if not callable(hook):
        raise ValueError("task must be a physmis_edu.tasks.Task (it states its rule in "
                         f"c_free_residual); got {type(task).__name__}")
    return hook()


def _quantiles(v: np.ndarray, qs=np.linspace(0.05, 0.95, 19)) -> np.ndarray:
    v = v[np.isfinite(v)]
    return np.quantile(v, qs) if v.size else np.full(qs.size, np.nan)


@dataclass
class StatisticsFit:
    """Result of :func:`fit_by_statistics` (Chapter 6): the chosen kernel, its parameters and
    loss."""

    kernel: object
    params: dict
    loss: float
    losses: list

    def __repr__(self) -> str:
        return f"StatisticsFit({self.kernel!r}, loss={self.loss:.3g})"


def _check_grid(grid) -> None:
    """``grid`` must map parameter names to non-empty sequences of values."""
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"grid must be a non-empty dict name -> list of values, e.g. "
                         f"{{'sigma': [0.01, 0.1]}}; got {grid!r}")
    for key, values in grid.items():
        if not isinstance(key, str):
            raise ValueError(f"grid keys must be parameter names (str); got {key!r}")
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) == 0:
            raise ValueError(f"grid[{key!r}] must be a non-empty list of values; got {values!r}")


def _grid_points(factory, grid, include_identity: bool) -> list[dict]:
    """Every combination of ``grid``, with the factory's ``IDENTITY`` first unless a point
    already holds it."""
    names = list(grid)
    points = [dict(zip(names, values)) for values in product(*(grid[k] for k in names))]
    identity = getattr(factory, "IDENTITY", None) if include_identity else None
    if identity is not None and not any(all(p.get(k) == v for k, v in identity.items())
                                        for p in points):
        points.insert(0, dict(identity))
    return points


def fit_by_statistics(factory, grid, train, samples, residual=None, rng=None,
                      n_perturb: int = 500, residual_weight: float = 1.0,
                      include_identity: bool = True) -> StatisticsFit:
    """Choose kernel parameters on a grid by matching c-free statistics (Chapter 6).

    ``factory(**params)`` builds an unfitted kernel (fitted here on ``train``); ``grid`` is a
    dict ``name -> list of values`` (every combination is tried). With ``include_identity``
    (the default) the family's zero-strength parameters ``factory.IDENTITY`` are tried too
    (first, so that a tie goes to "no perturbation"): a perfect model's samples must be able to
    choose the identity. The loss compares 19 quantiles of the nearest-training-neighbour
    distance of kernel-perturbed training trajectories with those of ``samples`` (relative
    error, log scale), plus ``residual_weight`` times the same for the physical residual
    ``residual(x)`` when one is given (:func:`rule_residual`). Only trajectories enter; the same
    random numbers are used for every combination.
    """
    train = check_trajectories(train, "train")
    samples = check_trajectories(samples, "samples", length=train.shape[1],
                                 channels=train.shape[2])
    n_perturb = check_positive_int(n_perturb, "n_perturb")
    residual_weight = check_nonnegative(residual_weight, "residual_weight")
    _check_grid(grid)
    if not callable(factory):
        raise ValueError("factory must be a callable factory(**params) -> kernel; "
                         f"got {factory!r}")
    rng = as_rng(rng)
    keep = rng.choice(train.shape[0], min(n_perturb, train.shape[0]), replace=False)
    subset = train[np.sort(keep)]
    seed = int(rng.integers(2 ** 63))
    floor_nn = 1e-3 * float(np.std(train)) * np.sqrt(train.shape[1] * train.shape[2])

    def stats(x):
        out = [np.log(_quantiles(nn_distances(x, train)) + floor_nn)]
        if residual is not None:
            out.append(np.log(_quantiles(residual(x)) + 1e-4))
        return out

    # The samples' statistics do not depend on the kernel: computed once per (train, samples,
    # residual) and shared by every family calibrated on the same cell. The key holds the
    # residual function itself (not its id), so a different rule can never hit this entry.
    target = memo(("target", digest(train), digest(samples), residual), lambda: stats(samples))
    best, losses = None, []
    for params in _grid_points(factory, grid, include_identity):
        kernel = factory(**params)
        if hasattr(kernel, "fit"):
            kernel.fit(train)
        got = stats(kernel.perturb(subset, np.random.default_rng(seed)))
        loss = float(np.nanmean(np.abs(got[0] - target[0])))
        if residual is not None:
            loss += residual_weight * float(np.nanmean(np.abs(got[1] - target[1])))
        losses.append((params, loss))
        if best is None or loss < best[1]:
            best = (kernel, loss, params)
    return StatisticsFit(kernel=best[0], params=best[2], loss=best[1], losses=losses)
