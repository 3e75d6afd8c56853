"""Synthetic rules with closed-form recovery (introduced in Chapter 4)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import as_rng, check_positive_int, check_range
from .base import Recovery, Task


def _logistic_residual(x):
    """RMS misfit of the best logistic rule ``x_{t+1} = r x_t (1 - x_t)``, ``r`` fitted per row."""
    x = np.asarray(x, dtype=np.float64)[:, :, 0]
    f = x[:, :-1] * (1.0 - x[:, :-1])
    r = np.sum(x[:, 1:] * f, axis=1) / np.maximum(np.sum(f * f, axis=1), 1e-12)
    res = x[:, 1:] - r[:, None] * f
    return np.sqrt(np.mean(res ** 2, axis=1))


def _sinusoid_residual(x):
    """RMS misfit of ``x_{t+1} + x_{t-1} = a x_t`` (``a`` fitted per row) over the row's RMS."""
    x = np.asarray(x, dtype=np.float64)[:, :, 0]
    mid, side = x[:, 1:-1], x[:, 2:] + x[:, :-2]
    a = np.sum(mid * side, axis=1) / np.maximum(np.sum(mid * mid, axis=1), 1e-12)
    res = side - a[:, None] * mid
    return np.sqrt(np.mean(res ** 2, axis=1) / np.maximum(np.mean(x ** 2, axis=1), 1e-12))


def _damped_residual(x):
    """RMS misfit of ``x_{t+1} = a1 x_t + a2 x_{t-1}`` (fitted per row) over the row's RMS."""
    x = np.asarray(x, dtype=np.float64)[:, :, 0]
    design = np.stack([x[:, 1:-1], x[:, :-2]], axis=2)
    target = x[:, 2:]
    gram = np.einsum("ntj,ntk->njk", design, design) + 1e-12 * np.eye(2)
    coef = np.linalg.solve(gram, np.einsum("ntj,nt->nj", design, target)[..., None])[..., 0]
    res = target - np.einsum("ntj,nj->nt", design, coef)
    return np.sqrt(np.mean(res ** 2, axis=1) / np.maximum(np.mean(x ** 2, axis=1), 1e-12))


@dataclass
class LogisticMap(Task):
    """Logistic map ``x_{t+1} = r x_t (1 - x_t)`` with control ``r``.

    Introduced in Chapter 4.
    The initial state ``x_0 ~ U(x0_lo, x0_hi)`` is the nuisance.
    Recovery is the closed-form least-squares fit of ``r`` in
    ``x_{t+1} = r f_t`` with ``f_t = x_t (1 - x_t)``:
    ``r_hat = sum(x_{t+1} f_t) / sum(f_t^2)``, exact on clean data.
    Chaoticity is tuned by ``[lo, hi]``: ``r < 3.57`` is periodic, most of ``[3.6, 4]`` is chaotic
    (see :func:`lyapunov_exponent`).
    """

    lo: float = 3.6
    hi: float = 4.0
    length: int = 32
    x0_lo: float = 0.1
    x0_hi: float = 0.9

    name = "logistic map"
    control_name = "r"
    units = ""
    description = "x_{t+1} = r x_t (1 - x_t); nuisance: the initial state x_0."
    channels = 1

    def __post_init__(self):
        super().__post_init__()
        if not (0.0 < self.lo and self.hi <= 4.0):
            raise ValueError(f"logistic map needs 0 < lo < hi <= 4 so that x stays in [0, 1]; "
                             f"got [{self.lo}, {self.hi}]")
        self.length = check_positive_int(self.length, "length", minimum=2)
        self.x0_lo, self.x0_hi = check_range(self.x0_lo, self.x0_hi,
                                             "initial-state range (x0_lo, x0_hi)")
        if not (0.0 < self.x0_lo and self.x0_hi < 1.0):
            raise ValueError(f"initial-state range must lie inside (0, 1); "
                             f"got [{self.x0_lo}, {self.x0_hi}]")

    def generate(self, c, rng=None) -> np.ndarray:
        r = self.check_c(c)
        rng = as_rng(rng)
        x = np.empty((r.size, self.length), dtype=np.float64)
        x[:, 0] = rng.uniform(self.x0_lo, self.x0_hi, size=r.size)
        for t in range(1, self.length):
            x[:, t] = r * x[:, t - 1] * (1.0 - x[:, t - 1])
        # Store float32 (the dtype models see) and recover from exactly what is stored.
        return x.astype(np.float32)[:, :, None]

    def recover(self, x) -> Recovery:
        x = self._check_x(x)[:, :, 0]
        f = x[:, :-1] * (1.0 - x[:, :-1])
        num = np.sum(x[:, 1:] * f, axis=1)
        den = np.sum(f * f, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = num / den
        return Recovery.from_values(r, {
            "nan in trajectory": np.isnan(x).any(axis=1),
            "degenerate (x stuck at 0 or 1)": den < 1e-12,
        })

    def c_free_residual(self):
        """RMS misfit of the logistic rule with ``r`` refitted per trajectory (Chapter 6)."""
        return _logistic_residual


def lyapunov_exponent(r, n_steps: int = 2000, burn_in: int = 500,
                      x0: float = 0.3141) -> np.ndarray:
    """Lyapunov exponent of the logistic map at each ``r`` (positive: chaotic).

    Introduced in Chapter 4.
    ``lambda(r) = mean_t log|r (1 - 2 x_t)|`` along an orbit after ``burn_in`` steps.
    """
    r = np.atleast_1d(np.asarray(r, dtype=np.float64))
    if r.ndim != 1 or r.size == 0 or not np.isfinite(r).all() or (r <= 0).any() or (r > 4).any():
        raise ValueError("r must be a non-empty array of values in (0, 4]")
    n_steps = check_positive_int(n_steps, "n_steps")
    burn_in = check_positive_int(burn_in, "burn_in", minimum=0)
    x = np.full_like(r, x0)
    for _ in range(burn_in):
        x = r * x * (1.0 - x)
    acc = np.zeros_like(r)
    for _ in range(n_steps):
        x = r * x * (1.0 - x)
        # A superstable orbit hits x = 1/2 exactly; the floor keeps the log finite.
        acc += np.log(np.maximum(np.abs(r * (1.0 - 2.0 * x)), 1e-300))
    return acc / n_steps


def _check_frequency_range(lo: float, hi: float, name: str, *, allow_equal: bool = False) -> None:
    ordered = lo <= hi if allow_equal else lo < hi
    if not (0.0 < lo and ordered and hi < np.pi):
        raise ValueError(f"{name} must satisfy 0 < lo {'<=' if allow_equal else '<'} hi < pi "
                         f"(rad/step) so that the oscillation is resolved by one sample per step; "
                         f"got [{lo}, {hi}]")


@dataclass
class Sinusoid(Task):
    """Sinusoid ``x_t = A sin(omega t + phi)`` with control ``omega`` (rad/step).

    Introduced in Chapter 4.
    Nuisance: amplitude ``A ~ U(amp_lo, amp_hi)`` and phase ``phi ~ U(0, 2 pi)``.
    Recovery is the closed-form least-squares fit of the recurrence
    ``x_{t+1} + x_{t-1} = 2 cos(omega) x_t``, which every sinusoid satisfies exactly:
    ``cos(omega_hat) = sum_t x_t (x_{t+1} + x_{t-1}) / (2 sum_t x_t^2)`` over ``t = 1 .. L-2``,
    ``omega_hat = arccos(...)``.
    A perturbed trajectory can give ``|cos(omega_hat)| > 1``, which no real frequency
    satisfies: that is a failure with reason ``"no real frequency (|cos omega| > 1)"``,
    never clipped to 0 or pi.
    """

    lo: float = 0.3
    hi: float = 1.2
    length: int = 32
    amp_lo: float = 0.5
    amp_hi: float = 1.5

    name = "sinusoid"
    control_name = "omega"
    units = "rad/step"
    description = "x_t = A sin(omega t + phi); nuisance: amplitude A and phase phi."
    channels = 1

    def __post_init__(self):
        super().__post_init__()
        _check_frequency_range(self.lo, self.hi, "sinusoid frequency range (lo, hi)")
        self.length = check_positive_int(self.length, "length", minimum=3)
        self.amp_lo, self.amp_hi = check_range(self.amp_lo, self.amp_hi,
                                               "amplitude range (amp_lo, amp_hi)")
        if self.amp_lo <= 0:
            raise ValueError(f"amplitude range must be positive; got amp_lo={self.amp_lo}")

    def generate(self, c, rng=None) -> np.ndarray:
        omega = self.check_c(c)
        rng = as_rng(rng)
        amp = rng.uniform(self.amp_lo, self.amp_hi, size=omega.size)
        phase = rng.uniform(0.0, 2.0 * np.pi, size=omega.size)
        t = np.arange(self.length)
        x = amp[:, None] * np.sin(omega[:, None] * t[None, :] + phase[:, None])
        return x.astype(np.float32)[:, :, None]

    def recover(self, x) -> Recovery:
        x = self._check_x(x)[:, :, 0]
        mid = x[:, 1:-1]
        num = np.sum(mid * (x[:, 2:] + x[:, :-2]), axis=1)
        den = 2.0 * np.sum(mid * mid, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            cos_omega = num / den
            omega = np.arccos(np.where(np.abs(cos_omega) <= 1.0, cos_omega, np.nan))
        return Recovery.from_values(omega, {
            "nan in trajectory": np.isnan(x).any(axis=1),
            "flat trajectory (no oscillation)": den < 1e-12,
            "no real frequency (|cos omega| > 1)": np.abs(cos_omega) > 1.0,
        })

    def c_free_residual(self):
        """Misfit of the recurrence ``x_{t+1} + x_{t-1} = a x_t``, ``a`` refitted per trajectory,
        relative to the trajectory's RMS (Chapter 6)."""
        return _sinusoid_residual


@dataclass
class DampedOscillator(Task):
    """Damped oscillation ``x_t = A exp(-gamma t) cos(omega t + phi)`` with
    control ``gamma`` (1/step).

    Introduced in Chapter 4 (the second smooth rule).
    Nuisance: amplitude ``A ~ U(amp_lo, amp_hi)``, frequency ``omega ~ U(omega_lo, omega_hi)``
    and phase ``phi ~ U(0, 2 pi)``.
    Every such trajectory satisfies the linear recurrence
    ``x_{t+1} = a1 x_t + a2 x_{t-1}`` with ``a1 = 2 exp(-gamma) cos(omega)`` and
    ``a2 = -exp(-2 gamma)``. Recovery is its closed-form least-squares fit
    (2 x 2 normal equations) and ``gamma_hat = -log(-a2) / 2``, exact on clean data.
    Failures: ``a2 >= 0`` (``"not a damped oscillation (a2 >= 0)"``) and a singular fit
    (``"degenerate fit"``). A growing oscillation (``a2 < -1``) recovers to a negative
    decay rate, outside the support, not a failure.
    """

    lo: float = 0.02
    hi: float = 0.12
    length: int = 32
    omega_lo: float = 0.6
    omega_hi: float = 1.0
    amp_lo: float = 0.5
    amp_hi: float = 1.5

    name = "damped oscillator"
    control_name = "gamma"
    units = "1/step"
    description = "x_t = A exp(-gamma t) cos(omega t + phi); nuisance: A, omega and phi."
    channels = 1

    def __post_init__(self):
        super().__post_init__()
        if self.lo < 0:
            raise ValueError(f"decay-rate range must be >= 0; got lo={self.lo}")
        self.length = check_positive_int(self.length, "length", minimum=4)
        self.omega_lo, self.omega_hi = float(self.omega_lo), float(self.omega_hi)
        _check_frequency_range(self.omega_lo, self.omega_hi,
                               "frequency range (omega_lo, omega_hi)", allow_equal=True)
        self.amp_lo, self.amp_hi = check_range(self.amp_lo, self.amp_hi,
                                               "amplitude range (amp_lo, amp_hi)")
        if self.amp_lo <= 0:
            raise ValueError(f"amplitude range must be positive; got amp_lo={self.amp_lo}")

    def generate(self, c, rng=None) -> np.ndarray:
        gamma = self.check_c(c)
        rng = as_rng(rng)
        amp = rng.uniform(self.amp_lo, self.amp_hi, size=gamma.size)
        omega = rng.uniform(self.omega_lo, self.omega_hi, size=gamma.size)
        phase = rng.uniform(0.0, 2.0 * np.pi, size=gamma.size)
        t = np.arange(self.length)[None, :]
        x = (amp[:, None] * np.exp(-gamma[:, None] * t)
             * np.cos(omega[:, None] * t + phase[:, None]))
        return x.astype(np.float32)[:, :, None]

    def recover(self, x) -> Recovery:
        x = self._check_x(x)[:, :, 0]
        now, before, after = x[:, 1:-1], x[:, :-2], x[:, 2:]
        s11 = np.sum(now * now, axis=1)
        s12 = np.sum(now * before, axis=1)
        s22 = np.sum(before * before, axis=1)
        b1 = np.sum(after * now, axis=1)
        b2 = np.sum(after * before, axis=1)
        det = s11 * s22 - s12 * s12
        with np.errstate(invalid="ignore", divide="ignore"):
            a2 = (s11 * b2 - s12 * b1) / det
            gamma = -0.5 * np.log(np.where(a2 < 0, -a2, np.nan))
        return Recovery.from_values(gamma, {
            "nan in trajectory": np.isnan(x).any(axis=1),
            # Relative test: det / (s11 s22) = 1 - corr^2 of consecutive samples.
            "degenerate fit": ~(det > 1e-10 * s11 * s22),
            "not a damped oscillation (a2 >= 0)": a2 >= 0,
        })

    def c_free_residual(self):
        """Misfit of the recurrence ``x_{t+1} = a1 x_t + a2 x_{t-1}``, refitted per trajectory,
        relative to the trajectory's RMS (Chapter 6)."""
        return _damped_residual
