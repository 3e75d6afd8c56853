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
    _reject_complex(x, name)
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array of shape (n, L, d); "
                         f"got {type(x).__name__}") from err
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
        raise ValueError(f"{name} contains NaN or infinite values "
                         f"({int((~np.isfinite(arr)).sum())} entries)")
    return arr


def check_values(v, name: str, *, allow_nan: bool = False) -> np.ndarray:
    """Return a non-empty 1-D float64 array or raise ``ValueError``."""
    _reject_complex(v, name)
    try:
        arr = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a 1-D numeric array; got {type(v).__name__}") from err
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; expected at least one value")
    if np.isinf(arr).any() or (not allow_nan and np.isnan(arr).any()):
        raise ValueError(
            f"{name} contains {'infinite' if allow_nan else 'NaN or infinite'} values")
    return arr


def _reject_complex(v, name: str) -> None:
    """Complex input would be cast to its real part (numpy only warns): refuse it instead."""
    try:
        is_complex = np.iscomplexobj(v)
    except (TypeError, ValueError):  # ragged or non-numeric: the caller's conversion reports it
        return
    if is_complex:
        raise ValueError(f"{name} must be real; got complex values")


def check_real(v, name: str, expected: str = "a real number") -> float:
    """Return ``v`` as a float, refusing strings, booleans, ``None`` and complex numbers."""
    if v is None or isinstance(v, (str, bytes, bool, np.bool_, complex, np.complexfloating)):
        raise ValueError(f"{name} must be {expected}; got {v!r}")
    try:
        return float(v)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be {expected}; got {v!r}") from err


def check_range(lo, hi, name: str = "range") -> tuple[float, float]:
    """Return ``(lo, hi)`` as floats with ``lo < hi``, both finite."""
    lo = check_real(lo, f"{name} lower bound lo")
    hi = check_real(hi, f"{name} upper bound hi")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"{name} bounds must be finite; got lo={lo}, hi={hi}")
    if not lo < hi:
        raise ValueError(f"{name} needs lo < hi; got lo={lo}, hi={hi}")
    return lo, hi


def check_positive_int(v, name: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    """Return ``v`` as an int in ``[minimum, maximum]`` or raise ``ValueError``."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {v!r}")
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name} must be <= {maximum}; got {v}")
    return int(v)


MAX_SEED = 2**63 - 1  # torch.manual_seed and numpy both take it; larger seeds overflow in torch


def check_seed(v, name: str = "seed") -> int:
    """A non-negative integer seed that numpy and torch both accept (at most ``2**63 - 1``)."""
    return check_positive_int(v, name, minimum=0, maximum=MAX_SEED)


def check_nonnegative(v, name: str) -> float:
    """Return ``v`` as a finite float ``>= 0`` or raise ``ValueError``."""
    f = check_real(v, name, "a non-negative number")
    if not np.isfinite(f) or f < 0:
        raise ValueError(f"{name} must be a finite number >= 0; got {v!r}")
    return f


def check_positive(v, name: str) -> float:
    """Return ``v`` as a finite float ``> 0`` or raise ``ValueError``."""
    f = check_nonnegative(v, name)
    if f == 0:
        raise ValueError(f"{name} must be > 0; got {v!r}")
    return f


def check_level(level, name: str) -> float:
    """Return a probability level (a quantile or a confidence level) in ``(0, 1)`` as a float."""
    if isinstance(level, bool) or not isinstance(level, numbers.Real):
        raise ValueError(f"{name} must be a number in (0, 1); got {level!r}")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"{name} must be in (0, 1); got {level!r}")
    return float(level)


def as_rng(rng) -> np.random.Generator:
    """Accept ``None``, an int seed or a ``Generator``; return a ``Generator``."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, numbers.Integral) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValueError("rng must be None, a non-negative integer seed or a "
                             f"numpy.random.Generator; got {rng}")
        return np.random.default_rng(rng)
    raise ValueError(f"rng must be None, an integer seed or numpy.random.Generator; "
                     f"got {type(rng).__name__}")
