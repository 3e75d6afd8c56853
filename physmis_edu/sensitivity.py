"""How data-space errors become control-space errors: sensitivity and ambiguity
(introduced in Chapter 3).

Two ways a recovery ``M`` turns small, typical data errors into a patterned drift:

* ill-conditioning: ``|grad M|`` is large (or uneven), so an error of a given size moves
  the recovered control a lot (:func:`sensitivity`, :func:`condition_profile`);
* ambiguity: trajectories of distant controls lie close in data space, so an error can
  carry a trajectory to the other one's control (:func:`ambiguity`).

:func:`delta_method_numeric` gives the local (small-noise) drift ``0.5 tr(Hess M S)`` and
spread ``grad M^T S grad M`` of any task by finite differences; :mod:`physmis_edu.symbolic`
derives the same quantities with sympy for the toys and the closed-form fits.
Everything here is numpy; recoveries are evaluated in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import (as_rng, check_nonnegative, check_positive, check_positive_int,
                          check_trajectories, check_values)


def _flat_trajectories(task, x, name: str = "x") -> np.ndarray:
    return check_trajectories(x, name, length=task.length, channels=task.channels)


def numerical_gradient(task, x, eps: float = 1e-5) -> np.ndarray:
    """``dM/dx`` of ``task.measure`` at each trajectory,
    shape ``(n, L, d)``, by central differences.

    Introduced in Chapter 3.
    Loops over the ``L * d`` coordinates (each step is one vectorised recovery of all
    trajectories). ``eps`` is the absolute step in data units; the default balances
    truncation (``eps^2``) against float64 rounding (``1e-16 / eps``) for data of order 1.
    Rows where the recovery fails give ``NaN``.
    """
    x = _flat_trajectories(task, x)
    eps = check_positive(eps, "eps")
    n, length, channels = x.shape
    grad = np.empty_like(x)
    for t in range(length):
        for j in range(channels):
            up, down = x.copy(), x.copy()
            up[:, t, j] += eps
            down[:, t, j] -= eps
            grad[:, t, j] = (task.measure(up) - task.measure(down)) / (2.0 * eps)
    return grad


def sensitivity(task, x, eps: float = 1e-5) -> np.ndarray:
    """Per-trajectory ``|grad M|`` (L2 norm): how far the control moves per unit data-space error.

    Introduced in Chapter 3.
    An isotropic error of size ``sigma`` per coordinate moves the recovered control by
    about ``sigma * sensitivity`` (standard deviation). Shape ``(n,)``, ``NaN`` where
    recovery fails.
    """
    grad = numerical_gradient(task, x, eps)
    return np.sqrt(np.sum(grad * grad, axis=(1, 2)))


def ambiguity(task, x, c=None, min_control_gap: float | None = None) -> np.ndarray:
    """For each trajectory, the data-space distance to the nearest one whose control differs by
    more than ``min_control_gap``.

    Introduced in Chapter 3.
    Small values mean ambiguity: a data error of about half that distance can carry the
    trajectory to a control at least ``min_control_gap`` away.
    ``c`` are the controls of ``x`` (default: ``task.measure(x)``);
    ``min_control_gap`` defaults to a tenth of the task's range.
    Distances are Euclidean over the flattened ``(L, d)`` trajectory. Returns ``(n,)``;
    ``inf`` where no trajectory in ``x`` is that far away in control.
    Cost is ``O(n^2)`` (computed in blocks), fine for a few thousand trajectories.
    """
    trajectories = _flat_trajectories(task, x)
    x = trajectories.reshape(len(trajectories), -1)
    c = task.measure(trajectories) if c is None else check_values(c, "c")
    if len(c) != len(x):
        raise ValueError(f"c must have one control per trajectory ({len(x)}); got {len(c)}")
    if np.isnan(c).any():
        raise ValueError(f"c contains NaN ({int(np.isnan(c).sum())} values); "
                         "drop failed recoveries first")
    gap = (0.1 * (task.hi - task.lo) if min_control_gap is None
           else check_nonnegative(min_control_gap, "min_control_gap"))
    sq_norms = np.sum(x * x, axis=1)
    nearest = np.empty(len(x))
    for start in range(0, len(x), 512):
        block = slice(start, start + 512)
        d2 = sq_norms[block, None] - 2.0 * x[block] @ x.T + sq_norms[None, :]
        far_in_control = np.abs(c[block, None] - c[None, :]) > gap
        nearest[block] = np.min(np.where(far_in_control, d2, np.inf), axis=1)
    # Rounding in the expanded square can give tiny negatives.
    return np.sqrt(np.maximum(nearest, 0.0))


@dataclass
class ConditionProfile:
    """Sensitivity as a function of the control (see :func:`condition_profile`); Chapter 3."""

    c: np.ndarray
    mean: np.ndarray
    q10: np.ndarray
    q90: np.ndarray


def condition_profile(task, c_grid, n_per: int = 32, rng=None,
                      eps: float = 1e-5) -> ConditionProfile:
    """Sensitivity of ``task``'s recovery along a grid of controls, over the nuisance.

    Introduced in Chapter 3.
    For each control in ``c_grid``, ``n_per`` trajectories are generated (nuisance from
    ``rng``) and their sensitivities summarised by the mean and the 10% and 90% quantiles
    (failed recoveries ignored). Handy for plotting where a recovery is ill-conditioned.
    """
    c_grid = task.check_c(c_grid)
    n_per = check_positive_int(n_per, "n_per")
    rng = as_rng(rng)
    controls = np.repeat(c_grid, n_per)
    values = sensitivity(task, task.generate(controls, rng), eps).reshape(len(c_grid), n_per)
    return ConditionProfile(c=c_grid, mean=np.nanmean(values, axis=1),
                            q10=np.nanquantile(values, 0.1, axis=1),
                            q90=np.nanquantile(values, 0.9, axis=1))


def delta_method_numeric(task, x, sigma: float | None = None, cov=None, eps: float = 1e-4):
    """Local drift ``0.5 tr(Hess M S)`` and spread ``grad M^T S grad M`` at each
    trajectory, by finite differences.

    Introduced in Chapter 3 (the local view of the kernel; Chapter 6 uses it).
    For a small zero-mean data error ``e`` with covariance ``S``:
    ``E[M(x + e)] - M(x) ~ drift`` and ``Var M(x + e) ~ spread``.
    Give either ``sigma`` (isotropic ``S = sigma^2 I``) or ``cov``, a ``(L*d, L*d)``
    covariance over the flattened trajectory (e.g. time-correlated noise).
    No Hessian is formed: ``tr(H S) = sum_k lambda_k v_k^T H v_k`` over the eigenpairs of
    ``S``, and each ``v^T H v`` is a second difference of ``M`` along ``v`` (step ``eps``).
    Works for any task; the symbolic versions in :mod:`physmis_edu.symbolic` check it.
    Returns ``(drift, spread)``, each ``(n,)``.
    """
    x = _flat_trajectories(task, x)
    n, length, channels = x.shape
    dim = length * channels
    if (sigma is None) == (cov is None):
        raise ValueError("give exactly one of sigma (isotropic noise) "
                         "or cov (a covariance matrix)")
    if cov is None:
        sigma = check_nonnegative(sigma, "sigma")
        weights, directions = np.full(dim, sigma**2), np.eye(dim)
    else:
        cov = np.asarray(cov, dtype=np.float64)
        if cov.shape != (dim, dim) or not np.isfinite(cov).all() or not np.allclose(cov, cov.T):
            raise ValueError(f"cov must be a finite symmetric matrix of shape ({dim}, {dim}); "
                             f"got shape {cov.shape}")
        weights, directions = np.linalg.eigh(cov)
        if weights.min() < -1e-12 * max(weights.max(), 1.0):
            raise ValueError("cov must be positive semi-definite")
        weights = np.maximum(weights, 0.0)
    eps = check_positive(eps, "eps")
    centre = task.measure(x)
    drift = np.zeros(n)
    slope_along = np.empty((n, dim))
    for k in range(dim):
        step = (eps * directions[:, k]).reshape(1, length, channels)
        up, down = task.measure(x + step), task.measure(x - step)
        drift += 0.5 * weights[k] * (up - 2.0 * centre + down) / eps**2
        slope_along[:, k] = (up - down) / (2.0 * eps)
    # slope_along[:, k] = grad M . v_k, so grad M^T S grad M = sum_k lambda_k (grad M . v_k)^2.
    spread = np.sum(weights[None, :] * slope_along**2, axis=1)
    return drift, spread


def logistic_bias_terms(x, sigma: float) -> dict:
    """The three second-order terms of the logistic map fit's bias under white noise (Chapter 4).

    The fit is ``r_hat = N / D`` with ``N = sum_t x_{t+1} f_t``, ``D = sum_t f_t^2`` and
    ``f_t = x_t (1 - x_t)``, ``t = 0 .. L-2``. For clean trajectories ``x`` (shape ``(n, L, 1)``)
    and noise ``x_t + e_t``, ``e_t`` i.i.d. with variance ``sigma^2``, a second-order expansion
    of ``N / D`` around the clean ``N_0 / D_0 = r`` gives ``E[r_hat] - r ~`` the sum of

    * ``"curvature"``: ``(E[N_2] - r E[D_2]) / D_0 = -r sigma^2 sum_t (1 - 5 f_t) / D_0``;
    * ``"covariance"``: ``-Cov(N_1, D_1) / D_0^2 = -sigma^2 sum_s a_s b_s / D_0^2``;
    * ``"variance"``: ``N_0 Var(D_1) / D_0^3 = r sigma^2 sum_s b_s^2 / D_0^2``;

    where ``N_1 = sum_s a_s e_s`` and ``D_1 = sum_s b_s e_s`` are the first-order parts:
    ``a_s = f_{s-1} + x_{s+1} (1 - 2 x_s)`` (each part only where its index exists) and
    ``b_s = 2 f_s (1 - 2 x_s)``. Returns those three arrays of shape ``(n,)`` and their sum,
    ``"total"``; the total equals ``sigma^2 / 2 sum_k d^2 r_hat / dx_k^2``, the drift of
    :func:`physmis_edu.symbolic.closed_form_delta`.
    """
    x = check_trajectories(x, "x", channels=1)[:, :, 0]
    if x.shape[1] < 3:
        raise ValueError(f"x must have length L >= 3 for the logistic fit; got L={x.shape[1]}")
    sigma = check_nonnegative(sigma, "sigma")
    f = x[:, :-1] * (1.0 - x[:, :-1])
    slope = 1.0 - 2.0 * x[:, :-1]
    d0 = np.sum(f ** 2, axis=1)
    if (d0 <= 0).any():
        raise ValueError("x has a trajectory stuck at 0 or 1 (sum of f_t^2 is 0); "
                         "r is undefined there")
    r = np.sum(x[:, 1:] * f, axis=1) / d0
    a = np.zeros_like(x)
    a[:, 1:] += f                      # from e_{t+1} f_t
    a[:, :-1] += x[:, 1:] * slope      # from x_{t+1} f'(x_t) e_t
    b = np.zeros_like(x)
    b[:, :-1] = 2.0 * f * slope
    s2 = sigma ** 2
    terms = {
        "curvature": -r * s2 * np.sum(1.0 - 5.0 * f, axis=1) / d0,
        "covariance": -s2 * np.sum(a * b, axis=1) / d0 ** 2,
        "variance": r * s2 * np.sum(b ** 2, axis=1) / d0 ** 2,
    }
    terms["total"] = terms["curvature"] + terms["covariance"] + terms["variance"]
    return terms
