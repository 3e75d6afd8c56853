"""Synthetic rules with closed-form recovery (introduced in Chapter 4)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import as_rng, check_positive_int, check_range
from .base import Recovery, Task


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
            raise ValueError(f"logistic map needs 0 < lo < hi <= 4 so that x stays in [0, 1]; got [{self.lo}, {self.hi}]")
        self.length = check_positive_int(self.length, "length", minimum=2)
        self.x0_lo, self.x0_hi = check_range(self.x0_lo, self.x0_hi, "initial-state range (x0_lo, x0_hi)")
        if not (0.0 < self.x0_lo and self.x0_hi < 1.0):
            raise ValueError(f"initial-state range must lie inside (0, 1); got [{self.x0_lo}, {self.x0_hi}]")

    def generate(self, c, rng=None) -> np.ndarray:
        r = self._check_c(c)
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


def lyapunov_exponent(r, n_steps: int = 2000, burn_in: int = 500, x0: float = 0.3141) -> np.ndarray:
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
