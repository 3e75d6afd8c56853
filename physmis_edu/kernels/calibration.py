"""Calibration of a kernel from c-free statistics (Chapter 6).

A kernel's parameters are chosen by making kernel-perturbed training data look, by statistics of
the trajectories alone, like a model's samples. :func:`calibrate` is the one entry point; its
``statistic`` says which statistics are matched:

- ``"distances"``: the distribution of nearest-training-neighbour distances, compared by the
  Wasserstein-1 distance (the white-noise baseline of Chapters 5 to 8);
- ``"quantiles"``: 19 quantiles of the same distances on a log scale, plus, where the task has
  a rule, the same for its physical residual (:func:`rule_residual`).

The control ``c`` and the task's recovery are never used, so a kernel's prediction is not
fitted to the answer.
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

__all__ = ["Calibration", "calibrate", "rule_residual"]

STATISTICS = ("distances", "quantiles")


@dataclass
class Calibration:
    """Result of :func:`calibrate` (Chapter 6): the kernel at the chosen parameters and how
    they were chosen.

    ``params`` are the chosen parameters (``{"scale": s}`` for a grid of scales); ``loss`` the
    loss at the best grid point; ``losses`` a list ``(params, loss)`` for every grid point, in
    the order tried; ``target_median`` and ``fitted_median`` the median nearest-neighbour
    distance of the samples and of the kernel-perturbed training data at ``params``;
    ``at_edge`` whether a grid of scales had its best point at an end.
    """

    kernel: object
    params: dict
    statistic: str
    loss: float
    losses: list
    target_median: float
    fitted_median: float
    at_edge: bool = False

    @property
    def scale(self) -> float:
        """The chosen scale, for a calibration over a grid of scales."""
        if "scale" not in self.params:
            raise AttributeError("this calibration searched the parameters "
                                 f"{sorted(self.params)}, not one scale: read .params")
        return self.params["scale"]

    def __str__(self) -> str:
        edge = "  (at the edge of the grid: widen it)" if self.at_edge else ""
        chosen = (f"scale {self.scale:.4g}" if "scale" in self.params
                  else ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                 for k, v in self.params.items()))
        loss = "W1 of NN distances" if self.statistic == "distances" else "quantile loss"
        return (f"calibrated {self.kernel!r}: {chosen}, {loss} {self.loss:.3g}; median NN "
                f"distance model {self.target_median:.4g} vs kernel "
                f"{self.fitted_median:.4g}{edge}")


def calibrate(factory, train, samples, grid=None, statistic: str | None = None, residual=None,
              rng=None, n_perturb: int = 1000, refine: bool = True,
              include_identity: bool = True, residual_weight: float = 1.0) -> Calibration:
    """Choose a kernel's parameters so that kernel-perturbed training data look like a model's
    samples by c-free statistics (Chapter 6).

    Parameters
    ----------
    factory : a callable that builds the kernel. With a grid of scales (``grid`` None or a
        1-D sequence) it is called as ``factory(scale)``, e.g. ``Gaussian`` or
        ``lambda s: Smooth(s, ell=4)``; with a dict grid as ``factory(**params)``, e.g.
        ``Truncation``. A kernel with a ``fit`` method is fitted on ``train``.
    train, samples : trajectories ``(n, L, d)``: the training set and a model's samples.
    grid : ``None`` (31 scales geometric from ``1e-3`` to ``1`` times the data's std), a 1-D
        sequence of scales, or a dict ``name -> list of values`` (every combination is tried).
    statistic : ``"distances"`` matches the distribution of nearest-training-neighbour
        distances by Wasserstein-1 (the default for a grid of scales without ``residual``);
        ``"quantiles"`` matches 19 quantiles of those distances on a log scale, plus
        ``residual_weight`` times the same for ``residual(x)`` when one is given (the default
        for a dict grid or with ``residual``).
    residual : a c-free physical residual ``x -> (n,)`` (:func:`rule_residual`), or ``None``.
    n_perturb : training trajectories perturbed per trial (a random subset).
    refine : for a grid of scales, a golden-section search between the best point's
        neighbours follows the grid.
    include_identity : for a dict grid, the family's zero-strength parameters
        ``factory.IDENTITY`` are tried too (first, so that a tie goes to "no perturbation"): a
        perfect model's samples must be able to choose the identity.

    Only trajectories enter: the control ``c`` is never read, so the prediction is not fitted to
    the answer. The same random numbers are used at every grid point, so the loss is a smooth
    function of the parameters. A perturbed trajectory's nearest neighbour may be its own
    source; that is intended (a model sample close to a training trajectory sees the same).
    """
    if not callable(factory):
        raise ValueError("factory must be a callable that builds a kernel, scale -> kernel "
                         f"(e.g. Gaussian) or **params -> kernel; got {factory!r}")
    train = check_trajectories(train, "train")
    samples = check_trajectories(samples, "samples", length=train.shape[1],
                                 channels=train.shape[2])
    n_perturb = check_positive_int(n_perturb, "n_perturb")
    residual_weight = check_nonnegative(residual_weight, "residual_weight")
    scales = not isinstance(grid, dict)
    if statistic is None:
        statistic = "distances" if scales and residual is None else "quantiles"
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}; got {statistic!r}")
    if residual is not None and statistic != "quantiles":
        raise ValueError("residual is matched by statistic='quantiles' only; got "
                         f"statistic={statistic!r}")
    if residual is not None and not callable(residual):
        raise ValueError(f"residual must be a callable x -> (n,) or None; got {residual!r}")
    if scales:
        if grid is None:
            grid = float(np.std(train)) * np.geomspace(1e-3, 1.0, 31)
        grid = check_values(grid, "grid")
        if (grid < 0).any():
            raise ValueError("grid must contain scales >= 0")
        points = [{"scale": float(s)} for s in np.unique(grid)]
    else:
        _check_grid(grid)
        points = _grid_points(factory, grid, include_identity)

    def build(params):
        kernel = factory(params["scale"]) if scales else factory(**params)
        if not hasattr(kernel, "perturb"):
            raise ValueError("factory must return a kernel with a perturb(x, rng) method; "
                             f"got {kernel!r}")
        if hasattr(kernel, "fit") and not getattr(kernel, "is_fitted", False):
            kernel.fit(train)
        return kernel

    rng = as_rng(rng)
    keep = rng.choice(train.shape[0], min(n_perturb, train.shape[0]), replace=False)
    subset = train[np.sort(keep)]
    seed = int(rng.integers(2 ** 63))
    stats, compare, median = _statistic(statistic, train, residual, residual_weight)
    # The samples' statistics do not depend on the kernel: computed once per (statistic,
    # train, samples, residual) and shared by every family calibrated on the same cell. The key
    # holds the residual function itself (not its id), so another rule never hits this entry.
    target = memo((statistic, digest(train), digest(samples), residual), lambda: stats(samples))

    def evaluate(params):
        kernel = build(params)
        got = stats(kernel.perturb(subset, np.random.default_rng(seed)))
        return kernel, got, compare(got, target)

    losses, chosen = [], None
    for i, point in enumerate(points):
        trial = (i, point, *evaluate(point))
        losses.append((point, trial[-1]))
        # Only the best trial is kept; a tie keeps the earlier point (the identity first).
        if chosen is None or trial[-1] < chosen[-1]:
            chosen = trial
    best, params, kernel, got, loss = chosen
    at_edge = bool(scales and len(points) > 1 and best in (0, len(points) - 1) and loss > 0)
    if scales and refine and 0 < best < len(points) - 1:
        scale = _golden_section(lambda s: evaluate({"scale": float(s)})[2],
                                points[best - 1]["scale"], points[best + 1]["scale"],
                                params["scale"], loss)
        if scale != params["scale"]:
            params = {"scale": scale}
            kernel, got, _ = evaluate(params)
    if at_edge:
        warnings.warn(f"calibrate: best scale {params['scale']:g} is at the edge of the grid "
                      f"[{points[0]['scale']:g}, {points[-1]['scale']:g}]; the fit may need a "
                      "wider grid", stacklevel=2)
    return Calibration(kernel=kernel, params=params, statistic=statistic, loss=float(loss),
                       losses=losses, target_median=median(target),
                       fitted_median=median(got), at_edge=at_edge)


def _statistic(statistic, train, residual, residual_weight):
    """``(stats, compare, median)``: the statistics of a set of trajectories, the loss between
    two sets of them, and the median nearest-neighbour distance they hold."""
    if statistic == "distances":
        def stats(x):
            return nn_distances(x, train)

        def compare(got, target):
            return float(wasserstein_distance(got, target))

        def median(got):
            return float(np.median(got))
        return stats, compare, median

    floor_nn = 1e-3 * float(np.std(train)) * np.sqrt(train.shape[1] * train.shape[2])

    def stats(x):
        out = [np.log(_quantiles(nn_distances(x, train)) + floor_nn)]
        if residual is not None:
            out.append(np.log(_quantiles(residual(x)) + 1e-4))
        return out

    def compare(got, target):
        loss = float(np.nanmean(np.abs(got[0] - target[0])))
        if residual is not None:
            loss += residual_weight * float(np.nanmean(np.abs(got[1] - target[1])))
        return loss

    def median(got):
        # the middle one of the 19 quantiles is the median
        return float(np.exp(got[0][len(_QUANTILES) // 2]) - floor_nn)
    return stats, compare, median


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
# The physical residual and the grid
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


_QUANTILES = np.linspace(0.05, 0.95, 19)


def _quantiles(v: np.ndarray, qs=_QUANTILES) -> np.ndarray:
    v = v[np.isfinite(v)]
    return np.quantile(v, qs) if v.size else np.full(qs.size, np.nan)


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
