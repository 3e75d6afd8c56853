"""Checks at the library's boundary.

Every public function validates its inputs here so that bad input fails early,
with a message naming the argument and what was expected.
Nothing is clipped or dropped silently.
"""

from __future__ import annotations

import numbers

import numpy as np


def check_trajectories(x, name: str = "x", *, length: int | None = None,
                       channels: int | None = None, allow_nan: bool = False) -> np.ndarray:
    """Return ``x`` as a float64 array of shape ``(n, L, d)`` or raise ``ValueError``.

    ``allow_nan`` is for recovery functions, which must accept any array the
    models produce and report failures instead of raising.
    Infinite values are never accepted.
    """
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array of shape (n, L, d); got {type(x).__name__}") from err
    if arr.ndim != 3:
        raise ValueError(f"{name} must have shape (n, L, d) (3 dimensions); got shape {arr.shape}")
    if arr.size == 0 or arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); expected at least one trajectory")
    if length is not None and arr.shape[1] != length:
        raise ValueError(f"{name} must have length L={length}; got L={arr.shape[1]}")
    if channels is not None and arr.shape[2] != channels:
        raise ValueError(f"{name} must have d={channels} channels; got d={arr.shape[2]}")
    if allow_nan:
        if np.isinf(arr).any():
            raise ValueError(f"{name} contains infinite values")
    elif not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values ({int((~np.isfinite(arr)).sum())} entries)")
    return arr


def check_values(v, name: str, *, allow_nan: bool = False) -> np.ndarray:
    """Return a non-empty 1-D float64 array or raise ``ValueError``."""
    try:
        arr = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a 1-D numeric array; got {type(v).__name__}") from err
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; expected at least one value")
    if np.isinf(arr).any() or (not allow_nan and np.isnan(arr).any()):
        raise ValueError(f"{name} contains {'infinite' if allow_nan else 'NaN or infinite'} values")
    return arr


def check_range(lo, hi, name: str = "range") -> tuple[float, float]:
    """Return ``(lo, hi)`` as floats with ``lo < hi``, both finite."""
    lo, hi = float(lo), float(hi)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"{name} bounds must be finite; got lo={lo}, hi={hi}")
    if not lo < hi:
        raise ValueError(f"{name} needs lo < hi; got lo={lo}, hi={hi}")
    return lo, hi


def check_positive_int(v, name: str, *, minimum: int = 1) -> int:
    """Return ``v`` as an int ``>= minimum`` or raise ``ValueError``."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {v!r}")
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {v}")
    return int(v)


def check_nonnegative(v, name: str) -> float:
    """Return ``v`` as a finite float ``>= 0`` or raise ``ValueError``."""
    try:
        f = float(v)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a non-negative number; got {v!r}") from err
    if not np.isfinite(f) or f < 0:
        raise ValueError(f"{name} must be a finite number >= 0; got {v!r}")
    return f


def check_positive(v, name: str) -> float:
    """Return ``v`` as a finite float ``> 0`` or raise ``ValueError``."""
    f = check_nonnegative(v, name)
    if f == 0:
        raise ValueError(f"{name} must be > 0; got {v!r}")
    return f


def as_rng(rng) -> np.random.Generator:
    """Accept ``None``, an int seed or a ``Generator``; return a ``Generator``."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise ValueError(f"rng must be None, an integer seed or numpy.random.Generator; got {type(rng).__name__}")
