"""physmis_edu: the companion library of the book *Physical Misgeneralization*.

Submodules are imported on first use, so ``import physmis_edu`` is fast and does
not import torch; ``physmis_edu.models`` (torch) loads only when touched.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("runtime", "tasks", "metrics", "kernels", "sensitivity",
               "symbolic", "curation", "models", "plotting", "panel", "zoo",
               "audit", "cli", "mitigations", "reproduce", "confounds", "checks")

__all__ = ["__version__", "setup", *_SUBMODULES]


def setup(*args, **kwargs):
    """Set up a chapter (see :func:`physmis_edu.runtime.setup`)."""
    from .runtime import setup as _setup

    return _setup(*args, **kwargs)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
