"""Output helpers shared by the library: atomic file writes (checkpoints, the store of trained
runs, the panel), JSON-ready values, writable output folders and progress-bar settings (the
audit and ``reproduce``)."""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from pathlib import Path

import numpy as np


def write_atomic(path, write) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it into place.

    An interrupted write leaves the previous file intact and only a ``.tmp`` file behind, named
    ``.NAME.PID.RANDOM.tmp`` so that :func:`remove_stale_temps` can tell whether its writer still
    runs. The data are flushed to disk before the rename, and the file gets the permissions of a
    normally created one (``mkstemp`` would leave it private).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp",
                               dir=path.parent)
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


def write_text_atomic(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`write_atomic`)."""
    write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: the process exists but belongs to someone else
        return True
    return True


def _writer_pid(name: str) -> str:
    """The writer's pid in a temporary file's name: ``.NAME.PID.RANDOM.tmp`` (this module),
    ``NAME.PID.tmp`` and ``NAME.PID.tmp.npz`` (older panel caches)."""
    parts = name.split(".")
    if name.endswith(".tmp.npz"):
        return parts[-3]
    if name.startswith("."):
        return parts[-3]
    return parts[-2]


def remove_stale_temps(folder) -> list[Path]:
    """Delete the temporary files of interrupted writes in ``folder`` (Chapter 6).

    Only files whose writer process no longer runs are removed; files of running writers are
    left alone. Returns the paths removed.
    """
    removed = []
    folder = Path(folder)
    for tmp in sorted(set(folder.glob("*.tmp")) | set(folder.glob(".*.tmp"))
                      | set(folder.glob("*.tmp.npz"))):
        pid = _writer_pid(tmp.name)
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_running(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def jsonable(obj):
    """Plain JSON types; ``NaN`` and infinities become ``null``; keys starting with ``_`` are
    dropped (private working values)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def writable_folder(out) -> Path:
    """The output folder ``out``, created and probed for writing before any work is done.

    Raises ``ValueError`` saying what is wrong (the caller names its argument).
    """
    try:
        folder = Path(out)
    except TypeError as err:
        raise ValueError(f"expected a folder path; got {out!r}") from err
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(f"cannot write to folder {folder} "
                         f"({type(err).__name__}: {err.strerror or err})") from err
    return folder


def progress_disabled(progress) -> bool | None:
    """tqdm's ``disable`` for a ``progress`` argument: ``True``/``False`` as given; ``None``
    follows ``PHYSMIS_PROGRESS`` (``0``, ``false`` or ``no`` turn bars off), else tqdm decides
    (a bar only when stderr is a terminal)."""
    if progress is not None:
        return not bool(progress)
    value = os.environ.get("PHYSMIS_PROGRESS", "").strip().lower()
    if value:
        return value in ("0", "false", "no")
    return None
