"""The ``Task`` interface every task in the book shares (introduced in Chapter 1).

A task is a generator ``x = G(c, z)`` of trajectories with a known control ``c``
drawn from a prior ``p(c)`` on ``[lo, hi]``, and a recovery ``c = M(x)``.
"""

from __future__ import annotations

import textwrap

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from .._validation import as_rng, check_positive_int, check_range, check_trajectories, check_values


class Prior:
    """A density ``p(c)`` on ``[lo, hi]``: uniform by default, or any non-negative function.

    Introduced in Chapter 1.

    Parameters
    ----------
    lo, hi : float
        Support of the control, ``lo < hi``.
    density : callable, optional
        Unnormalised density, vectorised over a 1-D array of controls.
        Sampling uses the inverse CDF on a fine grid.
    """

    def __init__(self, lo: float, hi: float, density=None, grid: int = 4097):
        self.lo, self.hi = check_range(lo, hi, "prior")
        self.density = density
        if density is not None:
            if not callable(density):
                raise ValueError(f"density must be a callable c -> p(c) or None; got {density!r}")
            grid = check_positive_int(grid, "grid (points tabulating the density)", minimum=2)
            c = np.linspace(self.lo, self.hi, grid)
            w = np.asarray(density(c), dtype=np.float64)
            if w.shape != c.shape or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
                raise ValueError("density must return finite non-negative values, not all zero, "
                                 "on [lo, hi]")
            cdf = np.concatenate([[0.0], np.cumsum(0.5 * (w[1:] + w[:-1]) * np.diff(c))])
            self._grid, self._cdf = c, cdf / cdf[-1]

    @property
    def is_uniform(self) -> bool:
        return self.density is None

    def sample(self, n: int, rng=None) -> np.ndarray:
        """Draw ``n`` controls (float64)."""
        n = check_positive_int(n, "n")
        rng = as_rng(rng)
        u = rng.random(n)
        if self.density is None:
            return self.lo + (self.hi - self.lo) * u
        return np.interp(u, self._cdf, self._grid)

    def cdf(self, c) -> np.ndarray:
        c = np.clip(np.asarray(c, dtype=np.float64), self.lo, self.hi)
        if self.density is None:
            return (c - self.lo) / (self.hi - self.lo)
        return np.interp(c, self._grid, self._cdf)

    def bin_probs(self, edges) -> np.ndarray:
        """Probability of each bin between consecutive ``edges`` (inside ``[lo, hi]``)."""
        return np.diff(self.cdf(np.asarray(edges, dtype=np.float64)))

    def __repr__(self) -> str:
        kind = "uniform" if self.density is None else "custom density"
        return f"Prior({self.lo:g}, {self.hi:g}, {kind})"


@dataclass
class Recovery:
    """What ``Task.recover`` returns: recovered controls and why some failed.

    ``values`` is float64 of shape ``(n,)`` with ``NaN`` where recovery failed;
    ``reasons`` is an object array of the same shape, ``""`` where it succeeded.
    """

    values: np.ndarray
    reasons: np.ndarray

    @classmethod
    def from_values(cls, values, failures: dict[str, np.ndarray] | None = None) -> "Recovery":
        """Build from values and boolean masks per failure reason (first reason wins)."""
        values = np.asarray(values, dtype=np.float64).copy()
        reasons = np.full(values.shape, "", dtype=object)
        for reason, mask in (failures or {}).items():
            mask = np.asarray(mask, dtype=bool) & (reasons == "")
            reasons[mask] = reason
        values[reasons != ""] = np.nan
        still_nan = np.isnan(values) & (reasons == "")
        reasons[still_nan] = "not finite"
        return cls(values, reasons)

    @property
    def n_failed(self) -> int:
        return int((self.reasons != "").sum())

    def failure_counts(self) -> dict[str, int]:
        """Number of failed recoveries per reason."""
        keys, counts = np.unique(self.reasons[self.reasons != ""], return_counts=True)
        return {str(k): int(v) for k, v in zip(keys, counts)}


@dataclass
class Task(ABC):
    """A trajectory generator with a known control and a recovery of it.

    Introduced in Chapter 1.
    Subclasses set ``name``, ``control_name``, ``units``, ``length`` (L) and
    ``channels`` (d), and implement ``generate`` and ``recover``.
    ``sample`` draws ``c`` from the prior and calls ``generate``.
    Tasks where ``c`` is not an input of the generator (the maze) override ``sample``.
    """

    lo: float
    hi: float
    prior: Prior | None = field(default=None, repr=False)

    name = "task"
    control_name = "c"
    units = ""
    description = ""
    length = 0
    channels = 1

    def __post_init__(self):
        self.lo, self.hi = check_range(self.lo, self.hi, "control range (lo, hi)")
        if self.prior is None:
            self.prior = Prior(self.lo, self.hi)
        elif (self.prior.lo, self.prior.hi) != (self.lo, self.hi):
            raise ValueError(f"prior support [{self.prior.lo}, {self.prior.hi}] must equal "
                             f"the task's [lo, hi] = [{self.lo}, {self.hi}]")

    # -- generation -------------------------------------------------------
    @abstractmethod
    def generate(self, c, rng=None) -> np.ndarray:
        """Trajectories ``G(c, z)`` for given controls,
        nuisance from ``rng``: float32 ``(n, L, d)``.
        """

    def sample(self, n: int, rng=None) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` controls from the prior and their trajectories.

        Returns ``(x, c)``: ``x`` float32 of shape ``(n, L, d)``, ``c`` float64 of shape ``(n,)``.
        """
        rng = as_rng(rng)
        c = self.prior.sample(n, rng)
        return self.generate(c, rng), c

    # -- recovery ---------------------------------------------------------
    @abstractmethod
    def recover(self, x) -> Recovery:
        """Recover ``c`` from trajectories, with a reason for every failure."""

    def measure(self, x) -> np.ndarray:
        """``M(x)``: recovered controls, float64 ``(n,)``, ``NaN`` where recovery fails."""
        return self.recover(x).values

    # -- c-free statistics ------------------------------------------------
    def c_free_residual(self):
        """A residual ``x -> (n,)`` of the task's rule that never reads ``c``, or ``None``.

        Introduced in Chapter 6, where kernels are calibrated without the control. The rule's
        parameter is refitted per trajectory by least squares from ``x`` alone, so the residual
        is zero for every true trajectory, whatever its control; it never calls ``measure`` or
        ``recover``. Tasks without such a rule return ``None`` (this default); a task with one
        overrides this method and returns a function of ``x`` alone.
        """
        return None

    # -- helpers for subclasses --------------------------------------------
    def _check_x(self, x, allow_nan: bool = True) -> np.ndarray:
        return check_trajectories(x, "x", length=self.length, channels=self.channels,
                                  allow_nan=allow_nan)

    def check_c(self, c) -> np.ndarray:
        """Controls ``c`` as a 1-D float64 array inside ``[lo, hi]``, or ``ValueError``."""
        c = check_values(c, "c")
        bad = (c < self.lo) | (c > self.hi)
        if bad.any():
            raise ValueError(f"c must lie in [lo, hi] = [{self.lo}, {self.hi}]; "
                             f"{int(bad.sum())} values outside")
        return c

    def describe(self) -> str:
        """One paragraph wrapped at 88 characters: name, control and units, shape, prior."""
        unit = f" [{self.units}]" if self.units else ""
        text = (f"{self.name}: control {self.control_name}{unit} with prior {self.prior!r}; "
                f"trajectories of shape (L={self.length}, d={self.channels}).")
        text += f" {self.description}" if self.description else ""
        return textwrap.fill(text, 88)
