"""A small in-process cache shared by the kernel families and their calibration (Chapter 6).

Calibration refits the same kernel on the same arrays many times: the families memoise their
neighbour search and principal components, and :func:`~physmis_edu.kernels.calibrate` the
statistics of a model's samples. Keys hold a :func:`digest` of each array, never the array.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["digest", "memo"]

_MEMO: dict = {}
_MAX_ENTRIES = 32


def digest(a) -> str:
    """A key for an array's exact contents: SHA-1 of its bytes, plus its shape and dtype."""
    a = np.ascontiguousarray(a)
    return hashlib.sha1(a.view(np.uint8).reshape(-1)).hexdigest() + str(a.shape) + str(a.dtype)


def memo(key, compute):
    """``compute()``, cached under ``key`` (about 32 entries; the oldest goes first)."""
    if key not in _MEMO:
        if len(_MEMO) > _MAX_ENTRIES:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[key] = compute()
    return _MEMO[key]
