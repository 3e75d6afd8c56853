"""The local view, derived with sympy: drift ``0.5 tr(Hess M S)`` and spread
``grad M^T S grad M`` (Chapters 2 and 3).

For a small zero-mean data error ``e`` with covariance ``S = sigma^2 I``,
``E[M(x + e)] - M(x) ~ 0.5 sigma^2 tr(Hess M)`` (curvature of the recovery moves the mean)
and ``Var M(x + e) ~ sigma^2 |grad M|^2`` (sensitivity spreads mass).
This module derives both for:

* the 1-D toy ``c = g^-1(x)`` (:func:`delta_method_1d`),
  by differentiating the identity ``M(g(c)) = c``;
* nearest-point recovery on a curve (:func:`delta_method_curve`), by implicit differentiation
  of the stationarity condition ``(gamma(m) - x) . gamma'(m) = 0``;
* the closed-form least-squares fits (:func:`sinusoid_recovery_expr`,
  :func:`logistic_recovery_expr`, :func:`delta_method_expr`), by differentiating the fit
  itself; only the diagonal of the Hessian is formed, so this stays fast for ``L = 32``.

Numeric evaluators: :func:`toy_delta` (for :class:`~physmis_edu.tasks.InverseMap1D` and
:class:`~physmis_edu.tasks.CurveToy`) and :func:`closed_form_delta` (for
:class:`~physmis_edu.tasks.Sinusoid` and :class:`~physmis_edu.tasks.LogisticMap`).
:func:`delta_method_numeric` (re-exported from :mod:`physmis_edu.sensitivity`) does the same by
finite differences for any task and any covariance.

sympy is imported only here.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from ._validation import check_nonnegative, check_positive_int, check_trajectories
from .sensitivity import delta_method_numeric

__all__ = ["delta_method_1d", "delta_method_curve", "delta_method_expr", "inverse_map_expr",
           "curve_expr", "sinusoid_recovery_expr", "logistic_recovery_expr", "toy_delta",
           "closed_form_delta", "delta_method_numeric"]

SIGMA = sp.Symbol("sigma", positive=True)


# -- the 1-D toy -------------------------------------------------------------
def delta_method_1d(g_expr, c):
    """Drift and spread of ``c_hat = g^-1(g(c) + e)``, ``e ~ (0, sigma^2)``,
    as sympy expressions in ``c`` and ``sigma``.

    Introduced in Chapter 2.
    Write ``M1 = M'(g(c))`` and ``M2 = M''(g(c))``. Differentiating ``M(g(c)) = c`` once and
    twice gives ``M1 g' = 1`` and ``M2 g'^2 + M1 g'' = 0``, so
    drift ``= sigma^2 M2 / 2 = -sigma^2 g'' / (2 g'^3)`` and spread
    ``= sigma^2 M1^2 = sigma^2 / g'^2``.
    Where ``g'`` is small both blow up: mass is spread out of, and pushed along, the slow region.
    """
    m1, m2 = sp.symbols("M1 M2")
    slope, curvature = sp.diff(g_expr, c), sp.diff(g_expr, c, 2)
    solution = sp.solve([sp.Eq(m1 * slope, 1), sp.Eq(m2 * slope**2 + m1 * curvature, 0)],
                        [m1, m2], dict=True)[0]
    drift = sp.simplify(SIGMA**2 * solution[m2] / 2)
    spread = sp.simplify(SIGMA**2 * solution[m1] ** 2)
    return drift, spread


def inverse_map_expr(task, c=None):
    """``g(c)`` of an :class:`~physmis_edu.tasks.InverseMap1D` as a sympy expression; Chapter 2."""
    c = sp.Symbol("c", real=True) if c is None else c
    width = sp.nsimplify(task.hi - task.lo)
    k = 2 * sp.pi * task.bumps
    u = (c - sp.nsimplify(task.lo)) / width
    return sp.nsimplify(task.lo) + width * (
        u + sp.nsimplify(task.slope_variation) * sp.sin(k * u) / k)


# -- nearest point on a curve ---------------------------------------------------
def delta_method_curve(gamma, c):
    """Drift and spread of nearest-point recovery on the curve ``gamma(c)``
    (a list of sympy expressions), at points on the curve.

    Introduced in Chapter 2 (derived in Chapter 3).
    The recovered ``m(x)`` solves ``F(x, m) = (gamma(m) - x) . gamma'(m) = 0``. Implicit
    differentiation gives ``m_j = -F_{x_j} / F_m`` and
    ``m_jj = -(F_{x_j x_j} + 2 F_{x_j m} m_j + F_{mm} m_j^2) / F_m``; evaluated on the curve
    (``x = gamma(c)``, ``m = c``) for isotropic noise. The result simplifies to
    drift ``= -sigma^2 (gamma' . gamma'') / (2 |gamma'|^4)`` and spread ``= sigma^2 / |gamma'|^2``:
    only the change of speed along the curve moves the mean, not its bending.
    The returned expressions are not simplified (they can be large for an explicit curve);
    call ``sympy.simplify`` on small ones.
    """
    xs = sp.symbols(f"x0:{len(gamma)}", real=True)
    curve = sp.Matrix(gamma)
    tangent = curve.diff(c)
    stationarity = ((curve - sp.Matrix(xs)).T * tangent)[0]
    f_m = sp.diff(stationarity, c)
    grad = [-sp.diff(stationarity, xj) / f_m for xj in xs]
    trace = sum(-(sp.diff(stationarity, xj, 2) + 2 * sp.diff(stationarity, xj, c) * gj
                  + sp.diff(stationarity, c, 2) * gj**2) / f_m for xj, gj in zip(xs, grad))
    on_curve = dict(zip(xs, gamma))
    drift = SIGMA**2 * trace.subs(on_curve) / 2
    spread = SIGMA**2 * sum(gj**2 for gj in grad).subs(on_curve)
    return drift, spread


def curve_expr(task, c=None):
    """``gamma(c)`` of a :class:`~physmis_edu.tasks.CurveToy` as a list of
    sympy expressions; Chapter 2.
    """
    c = sp.Symbol("c", real=True) if c is None else c
    u = (c - sp.nsimplify(task.lo)) / sp.nsimplify(task.hi - task.lo)
    warp = u + sp.nsimplify(task.speed_variation) * sp.sin(2 * sp.pi * u) / (2 * sp.pi)
    theta = 2 * sp.pi * sp.nsimplify(task.turns) * warp
    radius = sp.nsimplify(task.inner_radius) + sp.nsimplify(task.fold) * theta / (2 * sp.pi)
    return [radius * sp.cos(theta), radius * sp.sin(theta)]


def toy_delta(task):
    """Numeric ``(c, sigma) -> (drift, spread)`` for a toy task, from the sympy derivation.

    Introduced in Chapter 2.
    For :class:`~physmis_edu.tasks.InverseMap1D` and :class:`~physmis_edu.tasks.CurveToy`:
    ``sigma`` is the noise scale per observation; a trajectory of ``L`` repeated observations
    is recovered from their mean, whose noise variance is ``sigma^2 / L``.
    """
    from .tasks.toy import CurveToy, InverseMap1D

    c = sp.Symbol("c", real=True)
    if isinstance(task, InverseMap1D):
        drift, spread = delta_method_1d(inverse_map_expr(task, c), c)
    elif isinstance(task, CurveToy):
        drift, spread = delta_method_curve(curve_expr(task, c), c)
    else:
        raise ValueError(f"toy_delta needs an InverseMap1D or a CurveToy; "
                         f"got {type(task).__name__} "
                         "(use closed_form_delta or delta_method_numeric)")
    evaluate = sp.lambdify((c, SIGMA), [drift, spread], modules="numpy", cse=True)

    def drift_spread(c_values, sigma):
        c_values = np.asarray(c_values, dtype=np.float64)
        sigma_mean = check_nonnegative(sigma, "sigma") / np.sqrt(task.length)
        d, s = evaluate(c_values, sigma_mean)
        return (np.broadcast_to(d, c_values.shape).astype(np.float64),
                np.broadcast_to(s, c_values.shape).astype(np.float64))

    return drift_spread


# -- closed-form least-squares fits -------------------------------------------------
def sinusoid_recovery_expr(length: int):
    """``omega_hat(x_0, ..., x_{L-1})`` of the sinusoid's recurrence fit,
    with its symbols; Chapter 4.
    """
    length = check_positive_int(length, "length", minimum=3)
    xs = sp.symbols(f"x0:{length}", real=True)
    num = sum(xs[t] * (xs[t + 1] + xs[t - 1]) for t in range(1, length - 1))
    den = 2 * sum(xs[t] ** 2 for t in range(1, length - 1))
    return sp.acos(num / den), xs


def logistic_recovery_expr(length: int):
    """``r_hat(x_0, ..., x_{L-1})`` of the logistic map's least-squares fit,
    with its symbols; Chapter 4.
    """
    length = check_positive_int(length, "length", minimum=2)
    xs = sp.symbols(f"x0:{length}", real=True)
    f = [xs[t] * (1 - xs[t]) for t in range(length - 1)]
    return sum(xs[t + 1] * f[t] for t in range(length - 1)) / sum(ft**2 for ft in f), xs


def delta_method_expr(recovery, xs):
    """Drift ``sigma^2/2 sum_k d^2M/dx_k^2`` and spread ``sigma^2 sum_k (dM/dx_k)^2``
    of a recovery expression.

    Introduced in Chapter 3.
    Isotropic noise only needs the diagonal of the Hessian, so this forms ``L`` second
    derivatives, not ``L^2`` (fast enough for ``L = 32``).
    """
    first = [sp.diff(recovery, xk) for xk in xs]
    drift = SIGMA**2 / 2 * sum(sp.diff(fk, xk) for fk, xk in zip(first, xs))
    spread = SIGMA**2 * sum(fk**2 for fk in first)
    return drift, spread


def closed_form_delta(task):
    """Numeric ``(x, sigma) -> (drift, spread)`` for a :class:`~physmis_edu.tasks.Sinusoid` or
    :class:`~physmis_edu.tasks.LogisticMap`.

    Introduced in Chapter 3.
    Symbolic derivatives of the fit itself (see :func:`delta_method_expr`), lambdified once
    for the task's length; ``x`` has shape ``(n, L, 1)``.
    """
    from .tasks.synthetic import LogisticMap, Sinusoid

    if isinstance(task, Sinusoid):
        recovery, xs = sinusoid_recovery_expr(task.length)
    elif isinstance(task, LogisticMap):
        recovery, xs = logistic_recovery_expr(task.length)
    else:
        raise ValueError(f"closed_form_delta needs a Sinusoid or a LogisticMap; "
                         f"got {type(task).__name__}")
    drift, spread = delta_method_expr(recovery, xs)
    evaluate = sp.lambdify((xs, SIGMA), [drift, spread], modules="numpy", cse=True)

    def drift_spread(x, sigma):
        x = check_trajectories(x, "x", length=task.length, channels=1)[:, :, 0]
        d, s = evaluate(list(x.T), check_nonnegative(sigma, "sigma"))
        return (np.broadcast_to(d, x.shape[:1]).astype(np.float64),
                np.broadcast_to(s, x.shape[:1]).astype(np.float64))

    return drift_spread
