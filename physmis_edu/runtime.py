"""Where and how big: device, run profile, seeds and threads (introduced in the Introduction).

Every chapter starts with ``rt = physmis_edu.setup()`` and sizes its work with
``rt.pick(ci=..., cpu=..., gpu=...)``.

Environment variables
---------------------
``PHYSMIS_PROFILE``  ``ci``, ``cpu`` or ``gpu``: forces the run profile.
``PHYSMIS_DEVICE``   ``cpu``, ``cuda`` or ``cuda:N``: forces the torch device.
``CI``               when set (and no profile is forced) the profile is ``ci``.
``PHYSMIS_THREADS``  torch threads per process (default: 1 in the ``ci`` profile, else all cores).

Torch is imported only when a device is needed, so ``import physmis_edu`` stays fast.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np

from ._validation import check_positive_int, check_seed

PROFILES = ("ci", "cpu", "gpu")


def _check_profile(profile: str, name: str = "profile") -> str:
    if profile not in PROFILES:
        raise ValueError(f"{name} must be one of {PROFILES}; got {profile!r}")
    return profile


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() not in ("", "0", "false", "no")


def resolve_device(device: str | None = None):
    """The torch device to use: ``device`` if given, else ``PHYSMIS_DEVICE``,
    else CUDA when available, else CPU.

    Introduced in the Introduction.
    Raises ``ValueError`` for a name other than ``cpu``, ``cuda`` or ``cuda:N``,
    and for ``cuda`` when no CUDA device is present.
    """
    import torch

    source = "device"
    if device is None:
        source = "the PHYSMIS_DEVICE environment variable (the device)"
    name = device if device is not None else os.environ.get("PHYSMIS_DEVICE")
    if name is None or name == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str):
        raise ValueError(f"{source} must be 'cpu', 'cuda' or 'cuda:N'; got {name!r}")
    name = name.strip().lower()
    ok = name in ("cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit())
    if not ok:
        raise ValueError(f"{source} must be 'cpu', 'cuda' or 'cuda:N'; got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"{source} asks for {name!r} but CUDA is not available; use 'cpu'")
    return torch.device(name)


def resolve_profile(profile: str | None = None, device=None) -> str:
    """The run profile: ``profile`` if given, else ``PHYSMIS_PROFILE``, else ``ci`` under CI,
    else ``gpu`` on CUDA, else ``cpu``.

    Introduced in the Introduction.
    """
    if profile is not None:
        return _check_profile(profile)
    forced = os.environ.get("PHYSMIS_PROFILE")
    if forced:
        variable = "the PHYSMIS_PROFILE environment variable (the run profile)"
        return _check_profile(forced.strip().lower(), variable)
    if _truthy(os.environ.get("CI")):
        return "ci"
    if device is None:
        device = resolve_device()
    return "gpu" if str(device).startswith("cuda") else "cpu"


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; return a fresh NumPy ``Generator`` for the caller.

    Introduced in the Introduction.
    """
    seed = check_seed(seed, "seed")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    import torch

    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def set_threads(n: int | None = None, profile: str = "cpu") -> int:
    """Set torch's intra-op threads: ``n``, else ``PHYSMIS_THREADS``, else 1 under ``ci``
    (processes share 2 cores), else all cores.
    """
    if n is None:
        env = os.environ.get("PHYSMIS_THREADS")
        if env:
            name = "the PHYSMIS_THREADS environment variable"
            if not env.strip().isdigit():
                raise ValueError(f"{name} must be a positive integer; got {env!r}")
            return _set_torch_threads(check_positive_int(int(env), name))
        n = 1 if profile == "ci" else (os.cpu_count() or 1)
    return _set_torch_threads(check_positive_int(n, "threads"))


def _set_torch_threads(n: int) -> int:
    import torch

    torch.set_num_threads(n)
    return n


@dataclass(frozen=True)
class Runtime:
    """The result of :func:`setup`: what a chapter needs to size and place its work."""

    device: object
    profile: str
    seed: int
    threads: int
    version: str

    def pick(self, *, ci, cpu, gpu):
        """Choose a value by profile, e.g. ``rt.pick(ci=2_000, cpu=10_000, gpu=100_000)``."""
        return {"ci": ci, "cpu": cpu, "gpu": gpu}[self.profile]

    @property
    def rng(self) -> np.random.Generator:
        """A fresh generator seeded with ``seed`` (the same numbers every time it is read)."""
        return np.random.default_rng(self.seed)

    @property
    def on_gpu(self) -> bool:
        return str(self.device).startswith("cuda")

    def report(self) -> str:
        import torch

        gpu = f" ({torch.cuda.get_device_name(self.device)})" if self.on_gpu else ""
        return (f"physmis_edu {self.version} | torch {torch.__version__} | "
                f"device {self.device}{gpu} | profile {self.profile} | "
                f"threads {self.threads} | seed {self.seed}")


def setup(profile: str | None = None, device: str | None = None, seed: int = 0,
          threads: int | None = None, verbose: bool = True) -> Runtime:
    """Set up a chapter: resolve device and profile, seed everything, set threads, print one line.

    Introduced in the Introduction.

    >>> rt = setup(profile="ci", device="cpu", verbose=False)
    >>> rt.pick(ci=1, cpu=2, gpu=3)
    1
    """
    from . import __version__

    if profile is not None:
        _check_profile(profile)
    dev = resolve_device(device)
    prof = resolve_profile(profile, dev)
    n_threads = set_threads(threads, prof)
    seed_everything(seed)
    rt = Runtime(device=dev, profile=prof, seed=int(seed), threads=n_threads, version=__version__)
    if verbose:
        print(rt.report())
    return rt


def glue(name: str, value, display: bool = False) -> None:
    """Give a computed value a name the page's prose can cite (``{glue:text}`name```).

    Introduced in Chapter 5. Uses myst-nb's ``glue`` when it is installed (the book build);
    elsewhere (Colab, plain Jupyter) it does nothing, so a chapter runs without myst-nb.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string; got {name!r}")
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return
    myst_glue(name, value, display=display)


def span(values, fmt: str = ".3f") -> str:
    """The range of ``values`` as text, ``"lo to hi"``, or one number when both ends format
    alike (introduced in Chapter 6): how the chapters state a result over seeds in a sentence.
    ``fmt`` is a format spec such as ``".2f"`` or ``".1%"``."""
    values = [float(v) for v in values]
    if not values or not all(np.isfinite(values)):
        raise ValueError(f"values must be one or more finite numbers; got {values!r}")
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    return lo if lo == hi else f"{lo} to {hi}"


def print_wrapped(*parts, sep: str = " ", end: str = "\n", width: int = 88) -> None:
    """``print`` whose long lines wrap at ``width`` characters with a hanging indent (Chapter 6).

    A line of a printed report that runs past about 88 characters is cut off at the right
    edge of a book page, so lines longer than ``width`` break between words and continue
    four spaces deeper than they started; shorter lines, and their alignment, are unchanged.
    """
    import textwrap

    check_positive_int(width, "width")
    text = sep.join(str(part) for part in parts)
    lines = []
    for line in text.split("\n"):
        if len(line) <= width:
            lines.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip())]
        lines.append(textwrap.fill(line, width, subsequent_indent=indent + "    ",
                                   break_on_hyphens=False))
    print("\n".join(lines), end=end)
