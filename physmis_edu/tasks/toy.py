"""Minimal toy tasks: malapportionment with no neural network (introduced in Chapter 2).

Two tasks small enough to draw and to analyse by hand:

* :class:`InverseMap1D`: a number ``x = g(c)`` and its inverse ``c = g^-1(x)``,
  with a knob for how unevenly ``g`` stretches the control axis (ill-conditioning).
* :class:`CurveToy`: a point on a spiral ``gamma(c)`` in the plane, recovered as the
  nearest point on the curve, with knobs for uneven speed along the curve
  (ill-conditioning) and for the gap between its windings (ambiguity: distant
  controls lie close in data space).

Both are defined beyond ``[lo, hi]``, so a perturbed point can recover to a control
outside the prior's support; the metrics count that mass as out of support instead of
piling it onto the ends of the range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import as_rng, check_nonnegative, check_positive, check_positive_int
from .base import Recovery, Task


def _warp(u, variation: float, bumps: int = 1):
    """``s(u) = u + v sin(2 pi b u) / (2 pi b)``: monotone for ``|v| < 1``,
    slope ``1 + v cos(2 pi b u)``.
    """
    k = 2.0 * np.pi * bumps
    return u + variation * np.sin(k * u) / k


def _warp_slope(u, variation: float, bumps: int = 1):
    return 1.0 + variation * np.cos(2.0 * np.pi * bumps * u)


def _check_variation(v, name: str) -> float:
    v = float(v)
    if not (np.isfinite(v) and -1.0 < v < 1.0):
        raise ValueError(f"{name} must lie in (-1, 1) so that the map stays strictly monotone; "
                         f"got {v!r}")
    return v


def _spread(x):
    """RMS spread of each trajectory about its own mean point (zero for a repeated point)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sqrt(np.mean((x - x.mean(axis=1, keepdims=True)) ** 2, axis=(1, 2)))


def _repeat_point(points: np.ndarray, length: int, noise: float, rng) -> np.ndarray:
    """``(n, d)`` points -> ``(n, L, d)`` float32 trajectories,
    each step observed with its own noise.
    """
    x = np.repeat(points[:, None, :], length, axis=1)
    if noise > 0:
        x = x + noise * rng.standard_normal(x.shape)
    return x.astype(np.float32)


@dataclass
class InverseMap1D(Task):
    """The simplest recovery: ``x = g(c)`` (plus optional observation noise), ``c = g^-1(x)``.

    Introduced in Chapter 2.
    ``g(c) = lo + (hi - lo) s(u)`` with ``u = (c - lo) / (hi - lo)`` and
    ``s(u) = u + v sin(2 pi b u) / (2 pi b)``, where ``v = slope_variation`` and ``b = bumps``.
    So ``g`` maps ``[lo, hi]`` onto itself with slope ``g'(c) = 1 + v cos(2 pi b u)``,
    which ranges over ``[1 - |v|, 1 + |v|]``.
    Where ``g'`` is small the inverse is ill-conditioned: a data-space error ``e`` moves
    the recovered control by about ``e / g'(c)``.
    With ``v > 0`` and ``b = 1`` the slow (ill-conditioned) region is the middle of the range.

    A trajectory is the point ``g(c)`` observed ``length`` times (shape ``(n, L, 1)``,
    ``L = 1`` by default), each observation with independent noise of scale ``noise``
    (0 by default, so ``M(G(c)) = c``).
    Recovery inverts ``g`` at the time-mean of the trajectory by vectorised bisection
    (exact to float64 rounding). ``g`` is defined and strictly increasing on the whole
    real line, so every finite ``x`` has a recovery; values outside ``[lo, hi]`` are
    returned as they are (out of support), not clipped.
    """

    lo: float = 0.0
    hi: float = 1.0
    slope_variation: float = 0.8
    bumps: int = 1
    length: int = 1
    noise: float = 0.0

    name = "inverse map (1-D toy)"
    control_name = "c"
    units = ""
    description = "x = g(c) with slope g'(c) = 1 + v cos(2 pi b u); recovery c = g^-1(x)."
    channels = 1

    def __post_init__(self):
        super().__post_init__()
        self.slope_variation = _check_variation(self.slope_variation, "slope_variation")
        self.bumps = check_positive_int(self.bumps, "bumps")
        self.length = check_positive_int(self.length, "length")
        self.noise = check_nonnegative(self.noise, "noise")

    # -- the map and its derivatives (used by the sensitivity tools and the book's plots) --
    def g(self, c) -> np.ndarray:
        """The forward map ``g(c)`` (float64), defined for any real ``c``."""
        c = np.asarray(c, dtype=np.float64)
        width = self.hi - self.lo
        return self.lo + width * _warp((c - self.lo) / width, self.slope_variation, self.bumps)

    def slope(self, c) -> np.ndarray:
        """``g'(c)``; its inverse ``1 / g'(c)`` is the recovery's sensitivity."""
        c = np.asarray(c, dtype=np.float64)
        return _warp_slope((c - self.lo) / (self.hi - self.lo), self.slope_variation, self.bumps)

    def g_inverse(self, x) -> np.ndarray:
        """``g^-1`` of float64 values (any shape, ``NaN`` passes through)."""
        x = np.asarray(x, dtype=np.float64)
        width = self.hi - self.lo
        y = (x - self.lo) / width
        # |s(u) - u| <= |v| / (2 pi b), so the root lies in this bracket.
        half = abs(self.slope_variation) / (2.0 * np.pi * self.bumps) + 1e-12
        a, b = y - half, y + half
        for _ in range(64):
            mid = 0.5 * (a + b)
            below = _warp(mid, self.slope_variation, self.bumps) < y
            a = np.where(below, mid, a)
            b = np.where(below, b, mid)
        return self.lo + width * 0.5 * (a + b)

    # -- Task interface ----------------------------------------------------
    def generate(self, c, rng=None) -> np.ndarray:
        c = self.check_c(c)
        return _repeat_point(self.g(c)[:, None], self.length, self.noise, as_rng(rng))

    def recover(self, x) -> Recovery:
        x = self._check_x(x)[:, :, 0]
        has_nan = np.isnan(x).any(axis=1)
        with np.errstate(invalid="ignore"):
            c = self.g_inverse(x.mean(axis=1))
        return Recovery.from_values(c, {"nan in trajectory": has_nan})

    def c_free_residual(self):
        """Spread of the trajectory about its mean: a true one repeats one point (Chapter 6)."""
        return _spread


@dataclass
class CurveToy(Task):
    """A point on a planar spiral ``gamma(c)``, recovered as the nearest point on the curve.

    Introduced in Chapter 2.
    With ``u = (c - lo) / (hi - lo)`` the spiral's angle is
    ``theta = 2 pi turns s(u)``, ``s(u) = u + v sin(2 pi u) / (2 pi)`` (``v = speed_variation``),
    and its radius ``r = inner_radius + fold * theta / (2 pi)``:
    ``gamma(c) = r (cos theta, sin theta)``.

    Two knobs, one per mechanism of Chapter 3:

    * ``speed_variation`` (in ``(-1, 1)``): how unevenly the control is spread along the
      curve. With ``v > 0`` the point moves slowly in the middle of the range, so a
      small error there moves the recovered control a lot (ill-conditioning).
    * ``fold``: the gap between consecutive windings. With ``turns = 1.5`` the first third
      of the range runs next to the last third, ``fold`` apart: distant controls, close
      points (ambiguity). A small ``fold`` makes an error of that size jump windings.

    A trajectory is the point observed ``length`` times (shape ``(n, L, 2)``, ``L = 1`` by
    default), each observation with independent noise of scale ``noise`` (0 by default).
    Recovery takes the time-mean point and finds the nearest point on the spiral over
    ``u`` in ``[-margin, 1 + margin]``: a dense grid, then bisection on the stationarity
    condition ``(gamma(u) - x) . gamma'(u) = 0``, exact to float64 rounding on clean data.
    The curve is searched a little beyond ``[lo, hi]`` so that a point pushed past an end
    recovers to a control outside the range (out of support) rather than onto the end;
    a point whose nearest point is the end of the searched curve is a failure with reason
    ``"beyond the end of the curve"``.
    """

    lo: float = 0.0
    hi: float = 1.0
    speed_variation: float = 0.8
    fold: float = 0.15
    turns: float = 1.5
    inner_radius: float = 1.0
    length: int = 1
    noise: float = 0.0
    margin: float = 0.05
    grid: int = 1025

    name = "curve toy (spiral)"
    control_name = "c"
    units = ""
    description = "a point on a spiral gamma(c); recovery by nearest point on the curve."
    channels = 2

    def __post_init__(self):
        super().__post_init__()
        self.speed_variation = _check_variation(self.speed_variation, "speed_variation")
        self.fold = check_positive(self.fold, "fold")
        self.turns = check_positive(self.turns, "turns")
        self.inner_radius = check_positive(self.inner_radius, "inner_radius")
        self.length = check_positive_int(self.length, "length")
        self.noise = check_nonnegative(self.noise, "noise")
        self.margin = check_nonnegative(self.margin, "margin")
        self.grid = check_positive_int(self.grid, "grid", minimum=16)
        theta_min = 2.0 * np.pi * self.turns * float(_warp(-self.margin, self.speed_variation))
        if self.inner_radius + self.fold * theta_min / (2.0 * np.pi) <= 0:
            raise ValueError("inner_radius is too small for this fold and margin: "
                             "the searched spiral would cross its centre")

    # -- the curve, in the unit coordinate u = (c - lo) / (hi - lo) --------------------
    def _angle_radius(self, u):
        theta = 2.0 * np.pi * self.turns * _warp(u, self.speed_variation)
        return theta, self.inner_radius + self.fold * theta / (2.0 * np.pi)

    def _curve_u(self, u):
        """``gamma`` and ``d gamma / du`` at unit coordinates ``u``
        (each of shape ``u.shape + (2,)``).
        """
        theta, r = self._angle_radius(u)
        dtheta = 2.0 * np.pi * self.turns * _warp_slope(u, self.speed_variation)
        dr = self.fold * dtheta / (2.0 * np.pi)
        cos, sin = np.cos(theta), np.sin(theta)
        point = np.stack([r * cos, r * sin], axis=-1)
        tangent = np.stack([dr * cos - r * sin * dtheta, dr * sin + r * cos * dtheta], axis=-1)
        return point, tangent

    def gamma(self, c) -> np.ndarray:
        """The curve point for each control (float64, shape ``c.shape + (2,)``), any real ``c``."""
        u = (np.asarray(c, dtype=np.float64) - self.lo) / (self.hi - self.lo)
        return self._curve_u(u)[0]

    def speed(self, c) -> np.ndarray:
        """``|d gamma / dc|``; its inverse is the recovery's sensitivity along the curve."""
        u = (np.asarray(c, dtype=np.float64) - self.lo) / (self.hi - self.lo)
        return np.linalg.norm(self._curve_u(u)[1], axis=-1) / (self.hi - self.lo)

    def nearest_control(self, points) -> tuple[np.ndarray, np.ndarray]:
        """Nearest point on the searched curve for ``(n, 2)`` float64 points.

        Returns ``(c, at_end)``: the control of the nearest point and a mask of points
        whose nearest point is an end of the searched curve (failures in ``recover``).
        """
        points = np.asarray(points, dtype=np.float64)
        u_grid = np.linspace(-self.margin, 1.0 + self.margin, self.grid)
        curve = self._curve_u(u_grid)[0]
        minus_twice_curve = np.ascontiguousarray(-2.0 * curve.T)
        curve_sq = (curve * curve).sum(1)
        nearest = np.empty(len(points), dtype=np.int64)
        for start in range(0, len(points), 1024):
            # |p - g|^2 minus |p|^2, which does not change the argmin over the grid.
            d2 = points[start:start + 1024] @ minus_twice_curve
            d2 += curve_sq
            nearest[start:start + 1024] = np.argmin(d2, axis=1)

        def stationarity(u):
            point, tangent = self._curve_u(u)
            return ((point - points) * tangent).sum(-1)

        a = u_grid[np.maximum(nearest - 1, 0)]
        b = u_grid[np.minimum(nearest + 1, self.grid - 1)]
        # The squared distance decreases into the grid minimum from both sides, so the
        # stationarity condition changes sign in [a, b] unless the minimum is an end of the grid.
        at_end = (((nearest == 0) & (stationarity(a) > 0))
                  | ((nearest == self.grid - 1) & (stationarity(b) < 0)))
        # 48 halvings take a two-cell bracket below float64 resolution.
        for _ in range(48):
            mid = 0.5 * (a + b)
            left = stationarity(mid) < 0
            a = np.where(left, mid, a)
            b = np.where(left, b, mid)
        u = 0.5 * (a + b)
        return self.lo + (self.hi - self.lo) * u, at_end

    # -- Task interface ----------------------------------------------------
    def generate(self, c, rng=None) -> np.ndarray:
        c = self.check_c(c)
        return _repeat_point(self.gamma(c), self.length, self.noise, as_rng(rng))

    def recover(self, x) -> Recovery:
        x = self._check_x(x)
        has_nan = np.isnan(x).any(axis=(1, 2))
        points = x.mean(axis=1)
        points[has_nan] = 0.0  # any finite stand-in; these rows are reported as failures
        c, at_end = self.nearest_control(points)
        return Recovery.from_values(c, {"nan in trajectory": has_nan,
                                        "beyond the end of the curve": at_end})

    def c_free_residual(self):
        """Spread of the trajectory about its mean: a true one repeats one point (Chapter 6)."""
        return _spread
