"""Kernel-informed coordinates: the model trains in ``y = Phi(x)`` and never sees ``c``
(Chapter 10).

A *representation* is an invertible map of trajectories ``(n, L, d) -> (n, L, d')`` with

- ``encode(x) -> y`` and ``decode(y) -> x``, ``decode(encode(x)) == x`` on the data's range;
- ``params() -> dict``, so that ``type(r)(**r.params())`` builds the same map.

A generative model fitted to ``encode(train)`` errs in ``y``; decoding carries its error back
through ``Phi^-1``, where the recovery ``M`` sees it. A representation is good for a task when
the errors a model makes in ``y`` move ``M(x)`` evenly up and down, so that the recovered
distribution keeps the shape of the prior. :func:`~physmis_edu.mitigations.predicted_drift`
scores that with a data deviation kernel acting in ``y``, before any training.

Adding a representation touches two places: its class below and its line in
:data:`REPRESENTATIONS`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.fft import dct, idct

from .._validation import check_trajectories

__all__ = ["Identity", "Warp", "SpectralScale", "TimeScale", "TailWarp", "Polar", "LogisticRatio",
           "PendulumEnergy", "ArcLength", "REPRESENTATIONS", "representation_from_dict",
           "representation_to_dict", "Represented"]


def _f32(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def _channel_mask(channels, d: int, name: str) -> np.ndarray:
    mask = np.zeros(d, dtype=bool)
    if channels is None:
        mask[:] = True
        return mask
    for c in channels:
        if not isinstance(c, (int, np.integer)) or not 0 <= c < d:
            raise ValueError(f"{name}: channels must be indices in [0, {d}); got {channels!r}")
        mask[c] = True
    return mask


def _polar(a, b):
    """``(rho, ua, ub)``: the lengths of the vectors ``(a, b)`` and their unit directions. A zero
    vector has no direction; ``(1, 0)`` stands in, and decodes back to zero."""
    rho = np.hypot(a, b)
    safe = np.where(rho > 0, rho, 1.0)
    return rho, np.where(rho > 0, a / safe, 1.0), np.where(rho > 0, b / safe, 0.0)


def _direction_norm(ua, ub):
    """The length of the direction a model produced, to divide by (1 where it is zero)."""
    norm = np.hypot(ua, ub)
    return np.where(norm > 0, norm, 1.0)


def _unit(v, lo, hi, refusal):
    """``(v - lo) / (hi - lo)`` clipped to ``[0, 1]``. Values outside ``[lo, hi]`` by more than
    rounding are refused; ``refusal`` says what must lie where."""
    u = (v - lo) / (hi - lo)
    outside = (u < -1e-6) | (u > 1 + 1e-6)
    if np.any(outside):
        raise ValueError(f"{refusal}; {int(outside.sum())} values do not")
    return np.clip(u, 0.0, 1.0)


def _logit(u, eps):
    """``log(u / (1 - u))`` with ``u`` clipped to ``[eps, 1 - eps]``; :func:`_logistic`
    undoes it."""
    u = np.clip(u, eps, 1 - eps)
    return np.log(u / (1 - u))


def _logistic(v):
    return 1 / (1 + np.exp(-v))


class _Base:
    def params(self) -> dict:
        """The constructor parameters."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Identity(_Base):
    """The data's own coordinates, ``y = x``: the baseline every candidate is compared with."""

    def encode(self, x) -> np.ndarray:
        return _f32(check_trajectories(x, "x", allow_nan=True))

    def decode(self, y) -> np.ndarray:
        return _f32(check_trajectories(y, "y", allow_nan=True))


@dataclass(frozen=True)
class Warp(_Base):
    """A monotone warp of bounded channels onto an unbounded or stretched scale.

    ``u = (x - lo) / (hi - lo)`` in ``[0, 1]``, then

    - ``'arcsine'``: ``y = (2 / pi) arcsin(sqrt(u))``, decoded by ``u = sin(pi y / 2)^2``.
      It stretches the ends of the range and compresses the middle; for the logistic map at
      ``r = 4`` it is the change of variables that turns the map into the tent map.
    - ``'logit'``: ``y = log(u / (1 - u))`` (``u`` clipped to ``[eps, 1 - eps]`` on encoding
      only), decoded by the logistic function.

    Both decoders are total: any ``y`` a model produces decodes to a state inside ``[lo, hi]``.
    ``channels``: the channels warped (default all).
    """

    kind: str = "arcsine"
    lo: float = 0.0
    hi: float = 1.0
    channels: tuple | None = None
    eps: float = 1e-4

    KINDS = ("arcsine", "logit")

    def __post_init__(self):
        if self.kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}; got {self.kind!r}")
        if not (np.isfinite(self.lo) and np.isfinite(self.hi) and self.lo < self.hi):
            raise ValueError(f"lo and hi must be finite with lo < hi; got {self.lo}, {self.hi}")
        if not 0 < self.eps < 0.5:
            raise ValueError(f"eps must be in (0, 0.5); got {self.eps}")
        if self.channels is not None:
            object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))

    def encode(self, x) -> np.ndarray:
        x = check_trajectories(x, "x", allow_nan=True).astype(np.float64)
        mask = _channel_mask(self.channels, x.shape[2], "Warp")
        u = _unit(x[..., mask], self.lo, self.hi,
                  f"Warp.encode: x must lie in [lo, hi] = [{self.lo}, {self.hi}] on the "
                  f"warped channels")
        y = (2.0 / np.pi * np.arcsin(np.sqrt(u)) if self.kind == "arcsine"
             else _logit(u, self.eps))
        out = x.copy()
        out[..., mask] = y
        return _f32(out)

    def decode(self, y) -> np.ndarray:
        y = check_trajectories(y, "y", allow_nan=True).astype(np.float64)
        mask = _channel_mask(self.channels, y.shape[2], "Warp")
        v = y[..., mask]
        u = np.sin(np.pi * v / 2) ** 2 if self.kind == "arcsine" else _logistic(v)
        out = y.copy()
        out[..., mask] = self.lo + (self.hi - self.lo) * u
        return _f32(out)


@dataclass(frozen=True)
class SpectralScale(_Base):
    """Weights on the orthonormal DCT-II coefficients along time: ``y_k = w_k X_k`` with
    ``w_k = (1 + k) ** alpha``.

    ``alpha > 0`` stretches the fast components, so that a model's error of a given size in
    ``y`` is smaller in ``x`` at high frequency: decoded errors become smoother.
    ``alpha < 0`` does the opposite. ``alpha = 0`` is a rotation of each channel's time axis.
    """

    alpha: float = 0.0

    def __post_init__(self):
        if not np.isfinite(self.alpha) or abs(self.alpha) > 4:
            raise ValueError(f"alpha must be a finite number in [-4, 4]; got {self.alpha}")

    def weights(self, length: int) -> np.ndarray:
        return (1.0 + np.arange(length)) ** self.alpha

    def encode(self, x) -> np.ndarray:
        x = check_trajectories(x, "x", allow_nan=True).astype(np.float64)
        w = self.weights(x.shape[1])[None, :, None]
        return _f32(dct(x, type=2, norm="ortho", axis=1) * w)

    def decode(self, y) -> np.ndarray:
        y = check_trajectories(y, "y", allow_nan=True).astype(np.float64)
        w = self.weights(y.shape[1])[None, :, None]
        return _f32(idct(y / w, type=2, norm="ortho", axis=1))


@dataclass(frozen=True)
class TimeScale(_Base):
    """Weights along time: ``y_t = w_t x_t`` with ``w_t = exp(slope * (t / (L - 1) - 1/2))``.

    ``slope > 0`` stretches late steps (a model's error there shrinks in ``x``), ``slope < 0``
    early ones. Per-channel standardisation inside the models undoes any constant factor, so
    only the profile along time matters.
    """

    slope: float = 0.0

    def __post_init__(self):
        if not np.isfinite(self.slope) or abs(self.slope) > 8:
            raise ValueError(f"slope must be a finite number in [-8, 8]; got {self.slope}")

    def weights(self, length: int) -> np.ndarray:
        t = np.arange(length) / max(length - 1, 1)
        return np.exp(self.slope * (t - 0.5))

    def encode(self, x) -> np.ndarray:
        x = check_trajectories(x, "x", allow_nan=True).astype(np.float64)
        return _f32(x * self.weights(x.shape[1])[None, :, None])

    def decode(self, y) -> np.ndarray:
        y = check_trajectories(y, "y", allow_nan=True).astype(np.float64)
        return _f32(y / self.weights(y.shape[1])[None, :, None])


@dataclass(frozen=True)
class TailWarp(_Base):
    """A monotone warp of unbounded channels that compresses or stretches their tails.

    - ``'asinh'``: ``y = asinh(x / scale)``, decoded by ``x = scale sinh(y)``. Values within
      about ``scale`` of zero keep their resolution, large ones are compressed: a model's error
      of a given size in ``y`` becomes small in ``x`` near zero and large in the tails.
    - ``'sinh'``: ``y = sinh(x / scale)``, the inverse warp: the tails are stretched, and a
      model's errors there shrink in ``x``.

    ``channels``: the channels warped (default all).
    """

    kind: str = "asinh"
    scale: float = 1.0
    channels: tuple | None = None

    KINDS = ("asinh", "sinh")

    def __post_init__(self):
        if self.kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}; got {self.kind!r}")
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale must be a finite number > 0; got {self.scale}")
        if self.channels is not None:
            object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))

    def _apply(self, x, name: str, inverse: bool) -> np.ndarray:
        x = check_trajectories(x, name, allow_nan=True).astype(np.float64)
        mask = _channel_mask(self.channels, x.shape[2], "TailWarp")
        forward_is_asinh = self.kind == "asinh"
        out = x.copy()
        v = x[..., mask]
        # asinh's inverse is sinh and the other way round.
        use_asinh = forward_is_asinh != inverse
        warp = np.arcsinh if use_asinh else np.sinh
        out[..., mask] = warp(v) * self.scale if inverse else warp(v / self.scale)
        return _f32(out)

    def encode(self, x) -> np.ndarray:
        return self._apply(x, "x", inverse=False)

    def decode(self, y) -> np.ndarray:
        return self._apply(y, "y", inverse=True)


@dataclass(frozen=True)
class Polar(_Base):
    """Pairs of channels in polar form: ``(a, b)`` becomes ``(rho, a / rho, b / rho)`` with
    ``rho = sqrt(a^2 + b^2)``, so each pair gains a channel (``d -> d + len(pairs)``).

    Why: a model that blends nearby training trajectories averages vectors that point in
    different directions, and the average is shorter than either. In polar form the length is a
    channel of its own and a blend keeps it. For the double pendulum the pair of angular
    velocities carries the kinetic energy. Decoding multiplies ``rho`` by the direction
    normalised to unit length; the new channels go after the untouched ones, in pair order.
    """

    pairs: tuple = ((0, 1),)

    def __post_init__(self):
        try:
            pairs = tuple((int(a), int(b)) for a, b in self.pairs)
        except (TypeError, ValueError):
            raise ValueError(f"pairs must be a sequence of channel pairs (a, b); "
                             f"got {self.pairs!r}") from None
        flat = [c for pair in pairs for c in pair]
        if not pairs or len(set(flat)) != len(flat) or min(flat) < 0:
            raise ValueError(f"pairs must hold disjoint pairs of distinct channel indices "
                             f">= 0; got {self.pairs!r}")
        object.__setattr__(self, "pairs", pairs)

    def params(self) -> dict:
        return {"pairs": [list(p) for p in self.pairs]}

    def _kept(self, d: int) -> list:
        used = {c for pair in self.pairs for c in pair}
        if max(used) >= d:
            raise ValueError(f"Polar: pairs {self.pairs} need at least {max(used) + 1} "
                             f"channels; got {d}")
        return [c for c in range(d) if c not in used]

    def encode(self, x) -> np.ndarray:
        x = check_trajectories(x, "x", allow_nan=True).astype(np.float64)
        parts = [x[..., self._kept(x.shape[2])]]
        for a, b in self.pairs:
            rho, ua, ub = _polar(x[..., a], x[..., b])
            parts.append(np.stack([rho, ua, ub], axis=-1))
        return _f32(np.concatenate(parts, axis=-1))

    def decode(self, y) -> np.ndarray:
        y = check_trajectories(y, "y", allow_nan=True).astype(np.float64)
        d = y.shape[2] - len(self.pairs)
        kept = self._kept(d)
        if len(kept) + 3 * len(self.pairs) != y.shape[2]:
            raise ValueError(f"Polar.decode: y must have {len(kept) + 3 * len(self.pairs)} "
                             f"channels; got {y.shape[2]}")
        out = np.empty(y.shape[:2] + (d,))
        out[..., kept] = y[..., :len(kept)]
        for i, (a, b) in enumerate(self.pairs):
            rho, ua, ub = (y[..., len(kept) + 3 * i + j] for j in range(3))
            norm = _direction_norm(ua, ub)
            out[..., a], out[..., b] = rho * ua / norm, rho * ub / norm
        return _f32(out)


def _failed_as_nan(x: np.ndarray) -> np.ndarray:
    """Mark trajectories that overflowed float32 while decoding as failed (all NaN)."""
    bad = ~np.isfinite(x).all(axis=(1, 2)) | (np.abs(np.nan_to_num(x)) > 1e30).any(axis=(1, 2))
    x = x.copy()
    x[bad] = np.nan
    return x


@dataclass(frozen=True)
class LogisticRatio(_Base):
    """Task-aware coordinates for the logistic map: ``y_0 = x_0`` and
    ``y_t = x_t / (x_{t-1} (1 - x_{t-1}))`` for ``t >= 1``.

    On a true orbit of ``x_{t+1} = r x_t (1 - x_t)`` every ``y_t`` after the first equals
    ``r``: the rule's form (not any trajectory's ``r``) turns the recovery into a reading of the
    coordinates, and a model's error of size ``e`` in ``y_t`` moves the recovered ``r`` by about
    ``e`` whatever the orbit does. Decoding runs the recursion
    ``x_t = y_t x_{t-1} (1 - x_{t-1})``; an orbit pushed outside ``[0, 1]`` can diverge, and a
    trajectory that overflows is returned as NaN (a failed recovery), not clipped.
    A training value with ``x_{t-1} (1 - x_{t-1}) = 0`` cannot be encoded (ValueError).

    ``start_shift`` is added to ``y_0 = x_0``. A model standardises each channel over all its
    steps; without the shift the gap between ``x_0`` (near 0.5) and the ratios (near ``r``)
    would set that scale, and an error of one standardised unit would be large in ``r``. The
    default 3.3 puts the start beside the ratios of the chaotic range ``r`` in ``[3.6, 4]``.
    """

    start_shift: float = 3.3

    def __post_init__(self):
        if not np.isfinite(self.start_shift):
            raise ValueError(f"start_shift must be finite; got {self.start_shift}")

    def encode(self, x) -> np.ndarray:
        x = check_trajectories(x, "x", allow_nan=True).astype(np.float64)
        if x.shape[2] != 1:
            raise ValueError(f"LogisticRatio needs one channel; got {x.shape[2]}")
        g = x[:, :-1] * (1 - x[:, :-1])
        if np.any(np.abs(g) < 1e-12):
            raise ValueError("LogisticRatio.encode: x hits 0 or 1 (x (1 - x) = 0), where the "
                             "ratio is undefined")
        return _f32(np.concatenate([x[:, :1] + self.start_shift, x[:, 1:] / g], axis=1))

    def decode(self, y) -> np.ndarray:
        y = check_trajectories(y, "y", allow_nan=True).astype(np.float64)
        if y.shape[2] != 1:
            raise ValueError(f"LogisticRatio needs one channel; got {y.shape[2]}")
        x = np.empty_like(y)
        x[:, 0] = y[:, 0] - self.start_shift
        with np.errstate(over="ignore", invalid="ignore"):
            for t in range(1, y.shape[1]):
                prev = x[:, t - 1]
                x[:, t] = y[:, t] * prev * (1 - prev)
        return _f32(_failed_as_nan(x))


@dataclass(frozen=True)
class PendulumEnergy(_Base):
    """Task-aware coordinates for the double pendulum's ``sincos`` channels
    ``(sin t1, cos t1, sin t2, cos t2, w1, w2)``: the angular velocities are replaced by the
    frame's energy ``e = V(theta) + T(theta, omega)`` and the direction ``(n1, n2)`` of
    ``u = L^T omega``, where ``M(theta) = L L^T`` is the mass matrix, so ``T = |u|^2 / 2``.

    On a true trajectory ``e`` is the same at every frame: the total energy. A model's error of
    size ``err`` in ``e`` moves the recovered energy by ``err``, up or down alike, where in the
    data's own coordinates an error in ``omega`` always adds kinetic energy on average.
    Decoding sets ``T = e - V(theta)``; where a model asks for ``e`` below the frame's potential
    the frame decodes at rest (``T = 0``), which the recovery then reads as ``V(theta) > e``.
    ``d`` goes from 6 to 7. The mechanical parameters must be the task's.

    ``energy_range=(lo, hi)`` stores the energy channel on a logit scale,
    ``log(u / (1 - u))`` with ``u = (e - lo) / (hi - lo)`` clipped to ``[1e-4, 1 - 1e-4]`` on
    encoding (a round trip moves an energy at the very ends by at most ``1e-4 (hi - lo)``),
    decoded by the logistic function. With the prior's range, a uniform prior's energies become
    a bell-shaped (logistic) channel whose ends are thin tails instead of the uniform's hard
    edges, and no ``y`` decodes to an energy outside ``[lo, hi]``: the range is built into the
    coordinates, so mass outside it can only come from frames decoded at rest.
    """

    m1: float = 1.0
    m2: float = 1.0
    l1: float = 1.0
    l2: float = 1.0
    g: float = 9.81
    energy_range: tuple | None = None

    EPS = 1e-4

    def __post_init__(self):
        for name in ("m1", "m2", "l1", "l2", "g"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0; got {v}")
        if self.energy_range is not None:
            try:
                bounds = np.ravel(np.asarray(self.energy_range, dtype=np.float64))
            except (TypeError, ValueError):
                bounds = np.array([np.nan])
            if bounds.size != 2 or not (np.isfinite(bounds).all()
                                        and 0 <= bounds[0] < bounds[1]):
                raise ValueError(f"energy_range must be None or (lo, hi) with 0 <= lo < hi, "
                                 f"finite; got {self.energy_range!r}")
            object.__setattr__(self, "energy_range", (float(bounds[0]), float(bounds[1])))

    @classmethod
    def for_task(cls, task, warp_energy: bool = False) -> "PendulumEnergy":
        """The coordinates with a :class:`~physmis_edu.tasks.DoublePendulum`'s parameters;
        ``warp_energy=True`` stores the energy on a logit scale over the prior's range."""
        if getattr(task, "representation", None) != "sincos":
            raise ValueError("task must be a DoublePendulum with representation='sincos'")
        energy_range = (task.prior.lo, task.prior.hi) if warp_energy else None
        return cls(task.m1, task.m2, task.l1, task.l2, task.g, energy_range)

    def _warp(self, e):
        if self.energy_range is None:
            return e
        lo, hi = self.energy_range
        return _logit(_unit(e, lo, hi, f"PendulumEnergy.encode: every frame's energy must lie "
                                        f"in energy_range = [{lo}, {hi}]"), self.EPS)

    def _unwarp(self, y):
        if self.energy_range is None:
            return y
        lo, hi = self.energy_range
        return lo + (hi - lo) * _logistic(y)

    def _potential(self, t1, t2):
        return self.g * ((self.m1 + self.m2) * self.l1 * (1 - np.cos(t1))
                         + self.m2 * self.l2 * (1 - np.cos(t2)))

    def _cholesky(self, t1, t2):
        a = (self.m1 + self.m2) * self.l1 ** 2
        d = self.m2 * self.l2 ** 2
        b = self.m2 * self.l1 * self.l2 * np.cos(t1 - t2)
        l11 = np.sqrt(a)
        l21 = b / l11
        l22 = np.sqrt(d - l21 ** 2)  # > 0: det M = a d - b^2 > 0 for m1 > 0
        return l11, l21, l22

    @staticmethod
    def _check6(x, name):
        x = check_trajectories(x, name, allow_nan=True).astype(np.float64)
        return x

    def encode(self, x) -> np.ndarray:
        x = self._check6(x, "x")
        if x.shape[2] != 6:
            raise ValueError(f"PendulumEnergy encodes the 6 sincos channels; got {x.shape[2]}")
        t1, t2 = np.arctan2(x[..., 0], x[..., 1]), np.arctan2(x[..., 2], x[..., 3])
        l11, l21, l22 = self._cholesky(t1, t2)
        w1, w2 = x[..., 4], x[..., 5]
        # u = L^T omega
        u1, u2 = l11 * w1 + l21 * w2, l22 * w2
        rho, n1, n2 = _polar(u1, u2)
        e = self._warp(self._potential(t1, t2) + 0.5 * rho ** 2)
        return _f32(np.concatenate([x[..., :4], np.stack([e, n1, n2], axis=-1)], axis=-1))

    def decode(self, y) -> np.ndarray:
        y = self._check6(y, "y")
        if y.shape[2] != 7:
            raise ValueError(f"PendulumEnergy decodes 7 channels; got {y.shape[2]}")
        t1, t2 = np.arctan2(y[..., 0], y[..., 1]), np.arctan2(y[..., 2], y[..., 3])
        kinetic = np.maximum(self._unwarp(y[..., 4]) - self._potential(t1, t2), 0.0)
        rho = np.sqrt(2 * kinetic)
        norm = _direction_norm(y[..., 5], y[..., 6])
        u1, u2 = rho * y[..., 5] / norm, rho * y[..., 6] / norm
        l11, l21, l22 = self._cholesky(t1, t2)
        w2 = u2 / l22
        w1 = (u1 - l21 * w2) / l11
        return _f32(np.concatenate([y[..., :4], np.stack([w1, w2], axis=-1)], axis=-1))


@dataclass(frozen=True)
class ArcLength(_Base):
    """Task-aware coordinates for a path in the plane (the maze's ``(x, y)`` channels; Chapter
    10): the start, the steps' lengths and their directions.

    With ``d_t = x_t - x_{t-1}``, ``s_t = |d_t|`` and ``S = sum_t s_t`` (the travel distance),
    each frame holds

    - the start ``x_0`` (two channels, the same at every frame);
    - with ``total=True`` (shape plus speed): ``S`` itself (the same at every frame) and the
      step's share ``f_t = (L - 1) s_t / S`` (mean 1); with ``total=False``: ``s_t``;
    - the step's direction ``d_t / s_t`` (two channels).

    Frame ``t`` holds step ``t``; frame 0, which has no step, repeats step 1.
    Why: in the data's own coordinates a model's error in the positions lengthens the path on
    average (``|d + e| > |d|`` for small steps), whichever way it points. Here an error in a
    length moves the distance up or down alike; with ``total=True`` the distance is read off one
    channel, and a model's error there moves it by exactly that error.

    Decoding averages the channels that are constant along a true path over the frames, takes
    the lengths' magnitudes (a negative length is a step backwards), normalises the directions
    and sums the steps from the start. A path whose decoded ``S`` is not positive has no
    shape and is returned as NaN (a failed recovery). ``d`` goes from 2 to 5 (``total=False``)
    or 6 (``total=True``). Errors in the directions add up along the path, so the end of a
    decoded path wanders further than its start; the sample checks say whether that costs
    quality.
    """

    total: bool = True

    def __post_init__(self):
        if not isinstance(self.total, bool):
            raise ValueError(f"total must be True or False; got {self.total!r}")

    def encode(self, x) -> np.ndarray:
        x = check_trajectories(x, "x", allow_nan=True).astype(np.float64)
        if x.shape[2] != 2 or x.shape[1] < 2:
            raise ValueError(f"ArcLength encodes paths of shape (n, L >= 2, 2); got "
                             f"{x.shape}")
        steps = np.diff(x, axis=1)
        steps = np.concatenate([steps[:, :1], steps], axis=1)
        length, ux, uy = _polar(steps[..., 0], steps[..., 1])
        start = np.broadcast_to(x[:, :1], x.shape)
        if self.total:
            total = length[:, 1:].sum(axis=1, keepdims=True)
            if np.any(total <= 0):
                raise ValueError("ArcLength.encode: a path that never moves has no shape "
                                 "(total=True needs a positive length)")
            n_steps = x.shape[1] - 1
            parts = [start, np.broadcast_to(total, length.shape)[..., None],
                     (n_steps * length / total)[..., None]]
        else:
            parts = [start, length[..., None]]
        return _f32(np.concatenate(parts + [ux[..., None], uy[..., None]], axis=-1))

    def decode(self, y) -> np.ndarray:
        y = check_trajectories(y, "y", allow_nan=True).astype(np.float64)
        want = 6 if self.total else 5
        if y.shape[2] != want:
            raise ValueError(f"ArcLength(total={self.total}).decode: y must have {want} "
                             f"channels; got {y.shape[2]}")
        start = y[:, :, :2].mean(axis=1)
        share = np.abs(y[:, 1:, want - 3])
        if self.total:
            total = y[:, :, 2].mean(axis=1)
            norm = share.sum(axis=1)
            ok = (total > 0) & (norm > 0)
            length = np.where(ok[:, None], total[:, None] * share
                              / np.where(norm > 0, norm, 1.0)[:, None], np.nan)
        else:
            length = share
        ux, uy = y[:, 1:, want - 2], y[:, 1:, want - 1]
        norm = _direction_norm(ux, uy)
        steps = np.stack([length * ux / norm, length * uy / norm], axis=-1)
        x = np.concatenate([start[:, None], start[:, None] + np.cumsum(steps, axis=1)], axis=1)
        return _f32(_failed_as_nan(x))


# The one registry of representations, by name (one line per class).
REPRESENTATIONS: dict[str, type] = {
    "Identity": Identity,
    "Warp": Warp,
    "SpectralScale": SpectralScale,
    "TimeScale": TimeScale,
    "TailWarp": TailWarp,
    "Polar": Polar,
    "LogisticRatio": LogisticRatio,
    "PendulumEnergy": PendulumEnergy,
    "ArcLength": ArcLength,
}


def representation_to_dict(rep) -> dict:
    """``{"name": ..., "params": {...}}``, e.g. for a run's spec in the trained-model store."""
    name = type(rep).__name__
    if REPRESENTATIONS.get(name) is not type(rep):
        raise ValueError(f"representation must be one of {sorted(REPRESENTATIONS)}; "
                         f"got {name}")
    return {"name": name, "params": rep.params()}


def representation_from_dict(spec: dict):
    """Inverse of :func:`representation_to_dict`."""
    if not isinstance(spec, dict) or set(spec) != {"name", "params"}:
        raise ValueError(f"a representation spec is a dict with keys 'name' and 'params'; "
                         f"got {spec!r}")
    if spec["name"] not in REPRESENTATIONS:
        raise ValueError(f"representation name must be one of {sorted(REPRESENTATIONS)}; "
                         f"got {spec['name']!r}")
    return REPRESENTATIONS[spec["name"]](**spec["params"])


class Represented:
    """A generative model trained in a representation: ``fit(x)`` fits ``model`` to
    ``rep.encode(x)``, ``sample(n)`` decodes what it generates (Chapter 10).

    The model never sees ``c``; it is the same unconditional model as the baseline's.
    Other attributes (``loss_history``, ``n_parameters``, ...) are the model's own.
    """

    def __init__(self, model, representation):
        for hook in ("fit", "sample"):
            if not callable(getattr(model, hook, None)):
                raise ValueError(f"model must have fit and sample methods; "
                                 f"{type(model).__name__} has no {hook}")
        for hook in ("encode", "decode"):
            if not callable(getattr(representation, hook, None)):
                raise ValueError(f"representation must have encode and decode methods "
                                 f"(see REPRESENTATIONS); {type(representation).__name__} "
                                 f"has no {hook}")
        self.model = model
        self.representation = representation

    def fit(self, x, callback=None, callback_steps=()):
        wrapped = None
        if callback is not None:
            def wrapped(model, step):
                callback(self, step)
        self.model.fit(self.representation.encode(x), callback=wrapped,
                       callback_steps=callback_steps)
        return self

    def sample(self, n: int, cond=None, inpaint=None, rng=None) -> np.ndarray:
        """``n`` trajectories in ``x``: the model's samples in ``y``, decoded."""
        if inpaint is not None:
            raise ValueError("inpaint is not supported by a model trained in a representation: "
                             "pins are given in x, the model works in y")
        return self.representation.decode(self.model.sample(n, cond=cond, rng=rng))

    def __getattr__(self, name):
        if name in ("model", "representation"):
            raise AttributeError(name)
        return getattr(self.model, name)
