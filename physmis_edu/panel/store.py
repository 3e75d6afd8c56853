"""The panel's on-disk cache: hashes that key it and atomic writes (Chapter 6).

Every cache entry is keyed by a hash of everything that decides it, including a hash of the
library source that computes it, so that nothing is reused across a code change.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from .._io import remove_stale_temps, write_atomic, write_text_atomic

__all__ = ["config_hash", "array_digest", "source_hash", "sample_code_hash", "score_code_hash",
           "save_npz", "save_text", "remove_stale_temps"]

_ROOT = Path(__file__).resolve().parents[1]  # the physmis_edu package


def config_hash(config: dict) -> str:
    """Short stable hash of a JSON-able configuration (the last part of a cache file's name)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def array_digest(*arrays) -> str:
    """Short SHA-256 of arrays: dtype, shape and bytes of each, in order."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.view(np.uint8).reshape(-1))
    return h.hexdigest()[:16]


def _file_sha(path: Path) -> str:
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


_CODE_HASHES: dict = {}


def source_hash(paths: tuple) -> str:
    """Short hash of the source files under ``paths`` (files or package folders), memoised."""
    if paths not in _CODE_HASHES:
        joined = "".join(_file_sha(Path(p)) for p in paths)
        _CODE_HASHES[paths] = hashlib.sha256(joined.encode()).hexdigest()[:16]
    return _CODE_HASHES[paths]


def sample_code_hash(parts=("models", "tasks")) -> str:
    """Hash of the library source that generates a cell's arrays (Chapter 6): by default the
    ``models`` and ``tasks`` packages.

    Part of every cell's and proxy's cache key, so that an edit to a model or a task retrains
    instead of reusing samples that the current code would not produce.
    """
    return source_hash(tuple(_ROOT / p for p in parts))


# Library source that computes a score; a change in any of it invalidates cached scores.
_SCORE_CODE = ("kernels", "panel", "metrics.py", "tasks")


def score_code_hash(extra=()) -> str:
    """Hash of the source code that computes a score (Chapter 6): the ``kernels``, ``panel`` and
    ``tasks`` packages and ``metrics.py``, plus ``extra`` files (e.g. the file that defines a
    kernel spec's ``build``). Part of every cached score's key."""
    paths = tuple(_ROOT / name for name in _SCORE_CODE) + tuple(Path(e).resolve() for e in extra)
    return source_hash(paths)


def save_npz(path, **arrays) -> None:
    """Write arrays to ``path`` (compressed ``.npz``) atomically, after removing the temporary
    files of writers that no longer run."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent)
    write_atomic(path, lambda handle: np.savez_compressed(handle, **arrays))


def save_text(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    write_text_atomic(path, text)
