"""What every data deviation kernel offers, and the one registry of kernel classes (Chapter 6).

A kernel ``K(x~ | x)`` is a random map from a training trajectory to what a model class tends
to produce in its place. In code it is an object with

- ``perturb(x, rng) -> ndarray``: a perturbed float32 copy of trajectories ``x`` ``(n, L, d)``;
- ``params() -> dict``: its constructor parameters, so that ``type(k)(**k.params())`` builds
  the same kernel (unfitted);
- ``IDENTITY``: a class attribute, the parameters at which ``perturb`` returns ``x`` exactly
  (with the constructor's defaults for the others), or ``None`` when no such set stands on its
  own; :func:`~physmis_edu.kernels.calibrate` adds it to every grid;
- optionally ``fit(train) -> self`` for kernels that read the training set, with
  ``is_fitted`` and ``fit_from(other)`` (take over another kernel's fit unchanged).

:class:`Kernel` states this as a protocol; :func:`with_params` changes some parameters of a
kernel and keeps the rest, its fit included.

Adding a kernel family touches two places: its class, in the file of its idea
(:mod:`~physmis_edu.kernels.noise`, :mod:`~physmis_edu.kernels.families`, or a new file), and
its line in :data:`KERNELS` below. ``physmis_edu.kernels`` exports every registered class under
its name, and the tests check every registered class against the protocol.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import numpy as np

from .families import (Compounding, DenoisedNoise, NeighbourBlend, ProjectedNoise,
                       ProxySamples, Quantise, Shrinkage, Truncation)
from .noise import Empirical, Gaussian, Smooth

__all__ = ["Kernel", "with_params", "KERNELS"]


@runtime_checkable
class Kernel(Protocol):
    """A data deviation kernel (Chapter 6): ``perturb``, ``params`` and ``IDENTITY``.

    ``isinstance(obj, Kernel)`` checks that the three exist, not what they return.
    """

    IDENTITY: ClassVar[dict | None]

    def perturb(self, x, rng=None) -> np.ndarray:
        """A perturbed float32 copy of trajectories ``x`` ``(n, L, d)``."""

    def params(self) -> dict:
        """The constructor parameters."""


def with_params(kernel, **changes):
    """A new kernel of ``kernel``'s class with the parameters ``changes`` and the others kept
    (Chapter 6).

    A fitted kernel's fit is carried over (``fit_from``): no family's fitted state depends on
    its parameters, so the result perturbs exactly like a fresh kernel with these parameters
    fitted on the same training set. Parameters are validated by the constructor, e.g.
    ``with_params(NeighbourBlend(mix=0.5), mix=2.0)`` raises ``ValueError``.
    """
    if not isinstance(kernel, Kernel):
        raise ValueError("kernel must be a kernel with perturb(x, rng), params() and IDENTITY "
                         f"(see physmis_edu.kernels.KERNELS); got {type(kernel).__name__}")
    params = kernel.params()
    unknown = sorted(set(changes) - set(params))
    if unknown:
        raise ValueError(f"{type(kernel).__name__} has no parameter {', '.join(unknown)}; "
                         f"its parameters are {', '.join(params)}")
    new = type(kernel)(**{**params, **changes})
    if getattr(kernel, "is_fitted", False):
        new.fit_from(kernel)
    return new


# The one registry of kernel classes, by name (one line per family).
KERNELS: dict[str, type] = {
    "Gaussian": Gaussian,
    "Smooth": Smooth,
    "Empirical": Empirical,
    "NeighbourBlend": NeighbourBlend,
    "ProjectedNoise": ProjectedNoise,
    "DenoisedNoise": DenoisedNoise,
    "Truncation": Truncation,
    "Shrinkage": Shrinkage,
    "Quantise": Quantise,
    "Compounding": Compounding,
    "ProxySamples": ProxySamples,
}
