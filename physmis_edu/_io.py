"""Atomic file writes shared by the library (checkpoints, the store of trained runs)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path, write) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it into place.

    An interrupted write leaves the previous file intact and only a ``.tmp`` file behind. The
    data are flushed to disk before the rename, and the file gets the permissions of a normally
    created one (``mkstemp`` would leave it private).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
