"""Noise kernels: white, time-correlated and empirical (Chapters 2 and 6).

:class:`Gaussian` and :class:`Smooth` are introduced in Chapter 2 as stand-ins for an imperfect
fit; :class:`Empirical`, built from a model's own residuals, in Chapter 6. Each has the kernel
interface of :mod:`physmis_edu.kernels.base`: ``perturb(x, rng)``, ``params()``, ``IDENTITY``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .._validation import (as_rng, check_nonnegative, check_positive, check_positive_int,
                           check_trajectories)
from .neighbours import nearest_neighbours

__all__ = ["Gaussian", "Smooth", "Empirical"]


def _as_float32(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


@dataclass(frozen=True)
class Gaussian:
    """White noise ``x~ = x + sigma * eps``, ``eps`` i.i.d. standard normal (Chapter 2)."""

    sigma: float

    # Not a dataclass field (no annotation): the zero-strength parameters, perturb returns x.
    IDENTITY = {"sigma": 0.0}

    def __post_init__(self):
        object.__setattr__(self, "sigma", check_nonnegative(self.sigma, "sigma"))

    def params(self) -> dict:
        """The constructor parameters, ``{"sigma": ...}``."""
        return {"sigma": self.sigma}

    def perturb(self, x, rng=None) -> np.ndarray:
        """Perturbed copy of ``x`` (shape ``(n, L, d)``), float32."""
        x = check_trajectories(x, "x")
        # float32 noise: the output is float32 anyway, and drawing it is twice as fast.
        eps = as_rng(rng).standard_normal(x.shape, dtype=np.float32)
        return _as_float32(x) + np.float32(self.sigma) * eps

    @property
    def scale(self) -> float:
        return self.sigma

    def __repr__(self) -> str:
        return f"Gaussian(sigma={self.sigma:.4g})"


@lru_cache(maxsize=64)
def _smooth_factor(length: int, ell: float) -> np.ndarray:
    """``A`` with ``A A^T`` the squared-exponential correlation ``exp(-(i-j)^2 / (2 ell^2))``
    (unit diagonal)."""
    t = np.arange(length, dtype=np.float64)
    corr = np.exp(-0.5 * ((t[:, None] - t[None, :]) / ell) ** 2)
    # For long ell the matrix is numerically singular, so Cholesky fails: the eigen factor with
    # negative round-off eigenvalues set to zero always exists.
    lam, vec = np.linalg.eigh(corr)
    factor = vec * np.sqrt(np.clip(lam, 0.0, None))
    factor /= np.sqrt((factor ** 2).sum(axis=1, keepdims=True))  # marginal std exactly 1
    factor.setflags(write=False)
    return factor


@dataclass(frozen=True)
class Smooth:
    """Noise correlated along time (Chapter 2): Gaussian with marginal std ``sigma`` and
    squared-exponential correlation ``exp(-(s-t)^2 / (2 ell^2))`` between steps ``s`` and ``t``
    (``ell`` in steps); channels are independent. ``ell -> 0`` gives :class:`Gaussian`.
    Diffusion and convolutional models tend to make errors of this kind.

    ``IDENTITY`` is ``None``: ``sigma = 0`` is the identity at any ``ell``, but ``ell`` has no
    neutral value to complete the set; ``with_params(kernel, sigma=0.0)`` is the identity.
    """

    sigma: float
    ell: float

    IDENTITY = None

    def __post_init__(self):
        object.__setattr__(self, "sigma", check_nonnegative(self.sigma, "sigma"))
        object.__setattr__(self, "ell",
                           check_positive(self.ell, "ell (correlation length in steps)"))

    def params(self) -> dict:
        """The constructor parameters, ``{"sigma": ..., "ell": ...}``."""
        return {"sigma": self.sigma, "ell": self.ell}

    def noise(self, shape, rng=None) -> np.ndarray:
        """Correlated unit-std noise of ``shape = (n, L, d)`` (float32)."""
        if not isinstance(shape, (tuple, list)) or len(shape) != 3:
            raise ValueError(f"shape must be (n, L, d), three positive integers; got {shape!r}")
        n, length, d = (check_positive_int(v, f"shape[{i}]") for i, v in enumerate(shape))
        # Time last in memory: one (n d, L) x (L, L) product, and for d = 1 no strided copy
        # after it.
        eps = as_rng(rng).standard_normal((n * d, length), dtype=np.float32)
        factor = _smooth_factor(int(length), self.ell).T.astype(np.float32)
        return (eps @ factor).reshape(n, d, length).transpose(0, 2, 1)

    def perturb(self, x, rng=None) -> np.ndarray:
        """Perturbed copy of ``x`` (shape ``(n, L, d)``), float32."""
        x = check_trajectories(x, "x")
        return _as_float32(_as_float32(x) + np.float32(self.sigma) * self.noise(x.shape, rng))

    @property
    def scale(self) -> float:
        return self.sigma

    def __repr__(self) -> str:
        return f"Smooth(sigma={self.sigma:.4g}, ell={self.ell:.4g})"


class Empirical:
    """Residuals between a model's samples and their nearest training trajectory, resampled
    (Chapter 6).

    ``perturb`` adds ``scale`` times a randomly drawn residual ``x~_j - NN(x~_j)`` to each
    trajectory. Build it with :meth:`from_samples`. Beware on chaotic data: a sample that is a
    genuinely new trajectory also leaves a residual, so the kernel predicts drift even for a
    perfect model (test it with true samples as "model samples").
    ``IDENTITY`` is ``None`` (the residuals have no neutral value);
    ``with_params(kernel, scale=0.0)`` is the identity.
    """

    IDENTITY = None

    def __init__(self, residuals, scale: float = 1.0):
        self.residuals = _as_float32(check_trajectories(residuals, "residuals"))
        self.scale = check_nonnegative(scale, "scale")

    @classmethod
    def from_samples(cls, train, samples, rng=None, max_samples: int | None = None,
                     scale: float = 1.0) -> "Empirical":
        """Residuals of ``samples`` against their nearest neighbour in ``train``.

        ``max_samples`` keeps a random subset of the samples (drawn with ``rng``) to bound the
        cost.
        """
        train = check_trajectories(train, "train")
        samples = check_trajectories(samples, "samples", length=train.shape[1],
                                     channels=train.shape[2])
        if max_samples is not None:
            max_samples = check_positive_int(max_samples, "max_samples")
            if samples.shape[0] > max_samples:
                keep = as_rng(rng).choice(samples.shape[0], max_samples, replace=False)
                samples = samples[np.sort(keep)]
        _, idx = nearest_neighbours(samples, train)
        return cls(samples - train[idx], scale=scale)

    def params(self) -> dict:
        """The constructor parameters, ``{"residuals": ..., "scale": ...}``."""
        return {"residuals": self.residuals, "scale": self.scale}

    def with_scale(self, scale: float) -> "Empirical":
        """The same residuals at another scale (for :func:`~physmis_edu.kernels.calibrate`)."""
        kernel = Empirical.__new__(Empirical)
        kernel.residuals, kernel.scale = self.residuals, check_nonnegative(scale, "scale")
        return kernel

    def perturb(self, x, rng=None) -> np.ndarray:
        """``x`` plus resampled residuals, float32; ``x`` must have the residuals' ``(L, d)``."""
        _, length, d = self.residuals.shape
        x = check_trajectories(x, "x", length=length, channels=d)
        pick = as_rng(rng).integers(0, self.residuals.shape[0], size=x.shape[0])
        return _as_float32(x + self.scale * self.residuals[pick].astype(np.float64))

    def __repr__(self) -> str:
        rms = float(np.sqrt(np.mean(self.residuals.astype(np.float64) ** 2)))
        return (f"Empirical(n_residuals={self.residuals.shape[0]}, scale={self.scale:g}, "
                f"residual_rms={rms:.4g})")
