"""Kernel families, each motivated by what a model class does (Chapter 6).

Every kernel here has the interface of :mod:`physmis_edu.kernels.base`: ``perturb(x, rng)``
returns a float32 array of ``x``'s shape, ``params()`` gives the constructor parameters, and
``IDENTITY`` the zero-strength parameters (``mix = 0``, all components kept, ``tau = 0``, no
rounding, ``sigma = 0``) at which ``perturb`` returns its input exactly; calibration
(:func:`~physmis_edu.kernels.calibrate`) always tries them, so that a kernel calibrated
on a perfect model's samples can choose "no perturbation".

Kernels that need the training set have ``fit(train)`` (returning ``self``), ``is_fitted`` and
``fit_from(other)``; their parameters are dimensionless (noise in units of the training data's
per-channel standard deviation, mixing weights, component counts), so parameters calibrated on
one task can be applied unchanged to another (the "before training" mode of Chapter 6).
What the families scored on the kernel panel is in ``benchmarks/README.md``.
"""

from __future__ import annotations

import numpy as np

from .._validation import as_rng, check_nonnegative, check_positive_int, check_trajectories
from ._memo import digest, memo
from .neighbours import k_nearest

__all__ = ["NeighbourBlend", "ProjectedNoise", "DenoisedNoise", "Truncation", "Shrinkage",
           "Quantise", "Compounding", "ProxySamples"]


def _f32(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def _channel_std(train: np.ndarray) -> np.ndarray:
    std = train.std(axis=(0, 1))
    return np.where(std > 1e-8, std, 1.0)


class _Fitted:
    """Shared ``fit`` bookkeeping: kernels that read the training set must be fitted first.

    ``_FIT_STATE`` names the attributes ``fit`` sets. None of them depends on the constructor
    parameters, so :meth:`fit_from` can share them between kernels of one class.
    """

    _fitted = False
    _FIT_STATE: tuple = ()

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`fit_from`) has been called."""
        return self._fitted

    def _check_size(self, n_train: int) -> None:
        """Raise if ``n_train`` training trajectories are too few for this kernel's
        parameters; checked by ``fit`` and by :meth:`fit_from` (none by default)."""

    def _need_fit(self):
        if not self._fitted:
            raise ValueError(f"{type(self).__name__} must be fitted first: call .fit(train)")

    def fit_from(self, other):
        """Take over the fit of ``other``, a fitted kernel of the same class, without
        recomputing it (for :func:`~physmis_edu.kernels.with_params`); returns ``self``."""
        if type(other) is not type(self):
            raise ValueError(f"other must be a {type(self).__name__}; got {type(other).__name__}")
        if not other.is_fitted:
            raise ValueError(f"other must be fitted first: call .fit(train) on {other!r}")
        if "train_" in self._FIT_STATE:
            self._check_size(other.train_.shape[0])
        for name in self._FIT_STATE:
            setattr(self, name, getattr(other, name))
        self._fitted = True
        return self


# ---------------------------------------------------------------------------------------------
# Near the data manifold
# ---------------------------------------------------------------------------------------------

class NeighbourBlend(_Fitted):
    """Random convex blend of a trajectory with its ``k`` nearest training neighbours
    (Chapter 6).

    ``x~ = (1 - lam) x + lam * sum_j w_j n_j``, with ``lam = mix * u``, ``u ~ U(0, 1)``,
    ``w ~ Dirichlet(1, ..., 1)`` over the neighbours ``n_j`` (the trajectory itself excluded),
    plus optional white noise of ``sigma`` training standard deviations.
    Why: a generative model with a smoothed density (a VAE's decoder, a diffusion model's
    smoothed score) puts mass *between* nearby training trajectories rather than off the data
    manifold in random directions. When neighbours of distant controls lie close in data space
    (chaotic or folded tasks), such blends recover to controls in between: the drift pattern
    follows the geometry of the data, not the size of the error.
    """

    IDENTITY = {"mix": 0.0, "sigma": 0.0}
    _FIT_STATE = ("train_", "std_", "_train_key")

    def __init__(self, k: int = 8, mix: float = 0.5, sigma: float = 0.0):
        self.k = check_positive_int(k, "k")
        self.mix = float(mix)
        if not (0.0 <= self.mix <= 1.0):
            raise ValueError(f"mix must lie in [0, 1]; got {mix!r}")
        self.sigma = check_nonnegative(sigma, "sigma (in training standard deviations)")

    def params(self) -> dict:
        """The constructor parameters, ``{"k": ..., "mix": ..., "sigma": ...}``."""
        return {"k": self.k, "mix": self.mix, "sigma": self.sigma}

    def _check_size(self, n_train: int) -> None:
        if n_train <= self.k:
            raise ValueError(f"train must hold more than k = {self.k} trajectories; got {n_train}")

    def fit(self, train) -> "NeighbourBlend":
        """Store the training set (flattened) and its per-channel std."""
        train = check_trajectories(train, "train")
        self._check_size(train.shape[0])
        self.train_ = _f32(train)
        self.std_ = _channel_std(train).astype(np.float32)
        self._train_key = digest(self.train_)
        self._fitted = True
        return self

    def neighbours(self, x) -> np.ndarray:
        """Indices ``(n, k)`` of each row's ``k`` nearest training trajectories (nearest first),
        an exact copy of the row itself excluded (:func:`~physmis_edu.kernels.k_nearest`)."""
        self._need_fit()
        x = _f32(x)
        kmax = max(self.k, 32)
        ranked = memo(("knn", self._train_key, digest(x), kmax),
                      lambda: k_nearest(x, self.train_, kmax, exclude_exact=True))
        return ranked[:, :self.k]

    def perturb(self, x, rng=None) -> np.ndarray:
        """Blend each row of ``x`` with its training neighbours; float32 of ``x``'s shape."""
        self._need_fit()
        x = check_trajectories(x, "x", length=self.train_.shape[1], channels=self.train_.shape[2])
        rng = as_rng(rng)
        if self.mix == 0.0 and self.sigma == 0.0:
            return _f32(x).copy()  # the identity: no neighbour search, no random numbers
        idx = self.neighbours(x)
        w = rng.dirichlet(np.ones(self.k), size=x.shape[0]).astype(np.float32)
        lam = (self.mix * rng.uniform(size=x.shape[0])).astype(np.float32)
        blend = np.einsum("nk,nkld->nld", w, self.train_[idx])
        out = (1.0 - lam)[:, None, None] * x + lam[:, None, None] * blend
        if self.sigma > 0:
            out = out + self.sigma * self.std_ * rng.standard_normal(x.shape, dtype=np.float32)
        return _f32(out)

    def __repr__(self) -> str:
        return f"NeighbourBlend(k={self.k}, mix={self.mix:.3g}, sigma={self.sigma:.3g})"


class ProjectedNoise(_Fitted):
    """White noise, then a pull back towards the data: ``z = x + sigma * std * eps`` and
    ``x~ = z + pull * (mean of the k nearest training trajectories of z - z)`` (Chapter 6).

    Why: a denoising model does not leave its errors where white noise puts them. Its last
    steps pull a sample towards the training data it has seen, so the error that remains lies
    mostly along the data, between neighbouring trajectories, and rarely far off it, where a
    recovery can throw the control out of its range. ``pull = 0`` is white noise of ``sigma``
    training standard deviations; ``sigma = 0`` is the identity (nothing is pulled).
    The neighbours are searched around the perturbed ``z``, and a training trajectory may be
    its own neighbour there, so a small error is pulled back towards its source.
    For ``sigma > 0`` the pull acts in full however small ``sigma`` is (towards the mean of
    ``k`` trajectories, not only the source), so the kernel does not approach the identity as
    ``sigma`` shrinks; only ``sigma = 0`` or ``pull = 0`` with small ``sigma`` do.
    """

    IDENTITY = {"sigma": 0.0, "pull": 0.0}
    _FIT_STATE = ("train_", "std_")

    def __init__(self, sigma: float = 0.1, pull: float = 0.8, k: int = 4):
        self.sigma = check_nonnegative(sigma, "sigma (in training standard deviations)")
        self.pull = float(pull)
        if not (0.0 <= self.pull <= 1.0):
            raise ValueError(f"pull must lie in [0, 1]; got {pull!r}")
        self.k = check_positive_int(k, "k")

    def params(self) -> dict:
        """The constructor parameters, ``{"sigma": ..., "pull": ..., "k": ...}``."""
        return {"sigma": self.sigma, "pull": self.pull, "k": self.k}

    def _check_size(self, n_train: int) -> None:
        if n_train < self.k:
            raise ValueError(f"train must hold at least k = {self.k} trajectories; "
                             f"got {n_train}")

    def fit(self, train) -> "ProjectedNoise":
        """Store the training set and its per-channel std (and whatever :meth:`_fit_extra`
        derives from them)."""
        train = check_trajectories(train, "train")
        self._check_size(train.shape[0])
        self.train_ = _f32(train)
        self.std_ = _channel_std(train).astype(np.float32)
        self._fit_extra()
        self._fitted = True
        return self

    def _fit_extra(self) -> None:
        """State a subclass derives from ``train_`` and ``std_`` (none here)."""

    def perturb(self, x, rng=None) -> np.ndarray:
        """Perturb each row of ``x`` and pull it towards its training neighbours."""
        self._need_fit()
        x = check_trajectories(x, "x", length=self.train_.shape[1], channels=self.train_.shape[2])
        if self.sigma == 0.0:
            return _f32(x).copy()
        z = _f32(x) + self.sigma * self.std_ * as_rng(rng).standard_normal(x.shape,
                                                                           dtype=np.float32)
        if self.pull == 0.0:
            return z
        return _f32(z + self.pull * (self._target(z) - z))

    def _target(self, z) -> np.ndarray:
        """Where the pull goes: the mean of the ``k`` nearest training trajectories of ``z``."""
        idx = k_nearest(z, self.train_, self.k, exclude_exact=False)
        return self.train_[idx].mean(axis=1)

    def __repr__(self) -> str:
        return f"ProjectedNoise(sigma={self.sigma:.3g}, pull={self.pull:.3g}, k={self.k})"


class DenoisedNoise(ProjectedNoise):
    """White noise, then a step towards what an ideal denoiser would return:
    ``z = x + sigma * std * eps`` and ``x~ = z + pull * (D(z) - z)`` (Chapter 6).

    ``D(z)`` is the posterior mean of the clean trajectory given ``z`` when the data are the
    training set and the noise is Gaussian with ``bandwidth * sigma`` training standard
    deviations: an average of the ``k`` nearest training trajectories of ``z`` (in units of
    the per-channel std), weighted by ``exp(-|z - x_j|^2 / (2 (bandwidth * sigma)^2))``.
    Why: a diffusion model is trained to be that denoiser and falls short of it, so its last
    steps pull a sample back towards the training data, and what error remains lies along
    the data rather than off it. Unlike :class:`ProjectedNoise`, whose pull goes to the plain
    mean of the neighbours however small ``sigma`` is, the weights here concentrate on the
    trajectory the noise came from as ``sigma`` shrinks, so on training trajectories the
    kernel tends to the identity, and a calibration that finds no error finds no drift.
    (On a trajectory that is not in the training set, a small ``sigma`` pulls it towards
    its nearest training trajectory.) It is :class:`ProjectedNoise` with that target for
    the pull, and ``bandwidth`` besides.
    """

    _FIT_STATE = ("train_", "std_", "scaled_")

    def __init__(self, sigma: float = 0.1, pull: float = 1.0, k: int = 16,
                 bandwidth: float = 1.0):
        super().__init__(sigma=sigma, pull=pull, k=k)
        self.bandwidth = float(bandwidth)
        if not (np.isfinite(self.bandwidth) and self.bandwidth > 0):
            raise ValueError("bandwidth (in units of sigma) must be a positive number; "
                             f"got {bandwidth!r}")

    def params(self) -> dict:
        """The constructor parameters, ``{"sigma", "pull", "k", "bandwidth"}``."""
        return {**super().params(), "bandwidth": self.bandwidth}

    def _fit_extra(self) -> None:
        # The weights are computed in training standard deviations, per channel.
        self.scaled_ = _f32(self.train_ / self.std_)

    def denoise(self, z) -> np.ndarray:
        """``D(z)``: the weighted average of each row's ``k`` nearest training trajectories."""
        self._need_fit()
        z = check_trajectories(z, "z", length=self.train_.shape[1],
                               channels=self.train_.shape[2])
        if self.sigma == 0.0:
            raise ValueError("denoise needs sigma > 0 (the weights' width is bandwidth * sigma)")
        return self._target(z)

    def _target(self, z) -> np.ndarray:
        scaled = _f32(z) / self.std_
        idx = k_nearest(scaled, self.scaled_, self.k, exclude_exact=False)
        near = self.scaled_[idx]
        d2 = ((near - scaled[:, None]) ** 2).sum(axis=(2, 3), dtype=np.float64)
        logits = -(d2 - d2.min(axis=1, keepdims=True)) / (2.0 * (self.bandwidth * self.sigma) ** 2)
        w = np.exp(logits)
        w /= w.sum(axis=1, keepdims=True)
        return _f32(np.einsum("nk,nkld->nld", w.astype(np.float32), self.train_[idx]))

    def __repr__(self) -> str:
        return (f"DenoisedNoise(sigma={self.sigma:.3g}, pull={self.pull:.3g}, k={self.k}, "
                f"bandwidth={self.bandwidth:.3g})")


# ---------------------------------------------------------------------------------------------
# Spectral: truncation and shrinkage in principal components
# ---------------------------------------------------------------------------------------------

class _PCA(_Fitted):
    """Principal components of the standardised, flattened training trajectories."""

    _FIT_STATE = ("shape_", "std_", "mean_", "components_", "variances_")

    def fit(self, train):
        train = check_trajectories(train, "train")
        self.shape_ = train.shape[1:]

        def decompose():
            std = _channel_std(train)
            flat = (train / std).reshape(train.shape[0], -1).astype(np.float64)
            mean = flat.mean(axis=0)
            _, s, vt = np.linalg.svd(flat - mean, full_matrices=False)
            return std, mean, vt, s ** 2 / max(1, train.shape[0] - 1)

        self.std_, self.mean_, self.components_, self.variances_ = memo(("pca", digest(train)),
                                                                        decompose)
        self._fitted = True
        return self

    def _to_z(self, x):
        flat = (np.asarray(x, dtype=np.float64) / self.std_).reshape(x.shape[0], -1)
        return (flat - self.mean_) @ self.components_.T

    def _from_z(self, z, shape):
        flat = z @ self.components_ + self.mean_
        return flat.reshape(shape) * self.std_

    def _noise(self, shape, rng):
        if self.sigma == 0:
            return 0.0
        return self.sigma * self.std_ * rng.standard_normal(shape)


class Truncation(_PCA):
    """Keep the first ``k`` principal components of a trajectory, plus white noise (Chapter 6).

    ``x~ = mean + sum_{i<k} <x - mean, v_i> v_i + sigma * std * eps`` (in standardised units).
    ``k = None`` (or any ``k >= L * d``) keeps every component: ``x`` itself, exactly, plus the
    noise.
    Why: networks learn dominant components first (spectral bias); an under-trained or small
    model reproduces the large-variance directions of the data and misses the fine ones. The
    recovery reads the control partly from the fine directions, so truncation moves it
    coherently.
    """

    IDENTITY = {"k": None, "sigma": 0.0}

    def __init__(self, k: int | None = 4, sigma: float = 0.0):
        self.k = None if k is None else check_positive_int(k, "k")
        self.sigma = check_nonnegative(sigma, "sigma (in training standard deviations)")

    def params(self) -> dict:
        """The constructor parameters, ``{"k": ..., "sigma": ...}``."""
        return {"k": self.k, "sigma": self.sigma}

    def perturb(self, x, rng=None) -> np.ndarray:
        self._need_fit()
        x = check_trajectories(x, "x", length=self.shape_[0], channels=self.shape_[1])
        if self.k is None or self.k >= x.shape[1] * x.shape[2]:
            # Every component kept: skip the round trip through the basis, so that it is
            # exactly x.
            kept = np.asarray(x, dtype=np.float64)
        else:
            z = self._to_z(x)
            z[:, self.k:] = 0.0
            kept = self._from_z(z, x.shape)
        return _f32(kept + self._noise(x.shape, as_rng(rng)))

    def __repr__(self) -> str:
        return f"Truncation(k={'all' if self.k is None else self.k}, sigma={self.sigma:.3g})"


class Shrinkage(_PCA):
    """Encoder-decoder blur: shrink each principal coordinate toward the mean (Chapter 6).

    Coordinate ``i`` (variance ``lam_i``) is multiplied by ``lam_i / (lam_i + tau * lam_0)``, a
    Wiener filter with a noise floor ``tau`` relative to the largest variance; plus white noise.
    ``tau = 0`` is no shrinkage: ``x`` itself, exactly, plus the noise.
    Why: a VAE's posterior is noisy, so its decoder averages over a neighbourhood in latent
    space: weak directions are pulled toward the mean more than strong ones (contraction toward
    mid-range in what it produces).
    """

    IDENTITY = {"tau": 0.0, "sigma": 0.0}

    def __init__(self, tau: float = 0.01, sigma: float = 0.0):
        self.tau = check_nonnegative(tau, "tau (noise floor relative to the largest variance)")
        self.sigma = check_nonnegative(sigma, "sigma (in training standard deviations)")

    def params(self) -> dict:
        """The constructor parameters, ``{"tau": ..., "sigma": ...}``."""
        return {"tau": self.tau, "sigma": self.sigma}

    def perturb(self, x, rng=None) -> np.ndarray:
        self._need_fit()
        x = check_trajectories(x, "x", length=self.shape_[0], channels=self.shape_[1])
        if self.tau == 0.0:
            # No noise floor: every gain is 1, so skip the round trip through the basis
            # (exactly x).
            kept = np.asarray(x, dtype=np.float64)
        else:
            lam = self.variances_
            gain = lam / (lam + self.tau * lam[0] + 1e-300)
            kept = self._from_z(self._to_z(x) * gain, x.shape)
        return _f32(kept + self._noise(x.shape, as_rng(rng)))

    def __repr__(self) -> str:
        return f"Shrinkage(tau={self.tau:.3g}, sigma={self.sigma:.3g})"


# ---------------------------------------------------------------------------------------------
# Autoregressive models: value bins and compounding errors
# ---------------------------------------------------------------------------------------------

class Quantise(_Fitted):
    """Round values to the centres of ``bins`` equal bins over each channel's training range,
    then move each value by a random number of bins (Chapter 6).

    ``jitter`` is the standard deviation, in bins, of a Gaussian offset rounded to whole bins.
    ``bins = None`` is no rounding (the identity; ``jitter`` must then be 0).
    Why: the book's Transformer emits bin centres (a known, deterministic error of size up to
    half a bin, fixed before training by ``bins``), and at temperature 1 it samples neighbouring
    bins around the right one. ``bins`` and ``jitter`` are both dimensionless.
    """

    IDENTITY = {"bins": None, "jitter": 0.0}
    _FIT_STATE = ("shape_", "lo_", "hi_")

    def __init__(self, bins: int | None = 64, jitter: float = 0.0):
        self.bins = None if bins is None else check_positive_int(bins, "bins", minimum=2)
        self.jitter = check_nonnegative(jitter, "jitter (in bins)")
        if self.bins is None and self.jitter > 0:
            raise ValueError("jitter must be 0 when bins is None (no rounding, no bins to "
                             f"jitter by); got {jitter!r}")

    def params(self) -> dict:
        """The constructor parameters, ``{"bins": ..., "jitter": ...}``."""
        return {"bins": self.bins, "jitter": self.jitter}

    def fit(self, train) -> "Quantise":
        train = check_trajectories(train, "train")
        self.shape_ = train.shape[1:]
        lo = train.min(axis=(0, 1)).astype(np.float64)
        hi = train.max(axis=(0, 1)).astype(np.float64)
        self.lo_, self.hi_ = lo, np.where(hi > lo, hi, lo + 1.0)
        self._fitted = True
        return self

    def perturb(self, x, rng=None) -> np.ndarray:
        self._need_fit()
        x = check_trajectories(x, "x", length=self.shape_[0], channels=self.shape_[1])
        if self.bins is None:
            return _f32(x).copy()
        width = self.hi_ - self.lo_
        tok = np.floor((x - self.lo_) / width * self.bins)
        if self.jitter > 0:
            tok = tok + np.rint(self.jitter * as_rng(rng).standard_normal(x.shape))
        tok = np.clip(tok, 0, self.bins - 1)
        return _f32(self.lo_ + (tok + 0.5) / self.bins * width)

    def __repr__(self) -> str:
        return f"Quantise(bins={self.bins}, jitter={self.jitter:.3g})"


class Compounding(_Fitted):
    """Errors that accumulate along the sequence: ``e_t = rho e_{t-1} + sigma eta_t``,
    ``e_0 = sigma eta_0`` (Chapter 6).

    ``x~ = x + std * e`` (``sigma`` in training standard deviations, ``rho`` in ``[0, 1]``).
    Why: an autoregressive model conditions each step on its own earlier outputs, so an early
    error is carried forward and later steps are worse than early ones; ``rho = 1`` is a random
    walk, ``rho = 0`` white noise; ``sigma = 0`` is the identity.
    """

    IDENTITY = {"sigma": 0.0, "rho": 0.0}
    _FIT_STATE = ("std_", "shape_")

    def __init__(self, sigma: float = 0.01, rho: float = 0.9):
        self.sigma = check_nonnegative(sigma, "sigma (in training standard deviations)")
        self.rho = float(rho)
        if not (0.0 <= self.rho <= 1.0):
            raise ValueError(f"rho must lie in [0, 1]; got {rho!r}")

    def params(self) -> dict:
        """The constructor parameters, ``{"sigma": ..., "rho": ...}``."""
        return {"sigma": self.sigma, "rho": self.rho}

    def fit(self, train) -> "Compounding":
        train = check_trajectories(train, "train")
        self.std_ = _channel_std(train)
        self.shape_ = train.shape[1:]
        self._fitted = True
        return self

    def perturb(self, x, rng=None) -> np.ndarray:
        self._need_fit()
        x = check_trajectories(x, "x", length=self.shape_[0], channels=self.shape_[1])
        if self.sigma == 0.0:
            return _f32(x).copy()
        eta = as_rng(rng).standard_normal(x.shape)
        e = np.empty_like(eta)
        e[:, 0] = eta[:, 0]
        for t in range(1, x.shape[1]):
            e[:, t] = self.rho * e[:, t - 1] + eta[:, t]
        return _f32(x + self.sigma * self.std_ * e)

    def __repr__(self) -> str:
        return f"Compounding(sigma={self.sigma:.3g}, rho={self.rho:.3g})"


# ---------------------------------------------------------------------------------------------
# A cheap proxy model as the kernel of an expensive one
# ---------------------------------------------------------------------------------------------

class ProxySamples:
    """The samples of a cheap proxy model, drawn in place of the trajectories (Chapter 6).

    ``perturb(x, rng)`` ignores the values of ``x`` and returns ``len(x)`` of the proxy's
    samples (without replacement while there are enough, else with replacement): the Markov
    kernel ``K(x~ | x) = p_proxy(x~)``, so ``q_hat`` is the proxy's own recovered distribution.
    Why: the drift is a property of the model class (its architecture, loss and sampler) meeting
    the data; the same class trained on the same trajectories for a small fraction of the budget
    makes errors of the same kind, so its recovered histogram is a prediction of the expensive
    model's made without any of its samples. The proxy is trained on trajectories only and never
    sees ``c`` (see :func:`physmis_edu.panel.load_or_train_proxy`). ``IDENTITY`` is ``None``: a
    perfect-model control of this kernel is not defined, because its drift comes from the model
    class, not from samples it could be calibrated on. The residual variant (the proxy's samples
    minus their nearest training trajectory, added to training data) is
    :meth:`physmis_edu.kernels.Empirical.from_samples` with the proxy's samples.

    ``mix`` (``lambda`` in ``[0, 1]``, default 1) shrinks the proxy's drift toward the prior:
    ``round(mix * n)`` rows at random positions are replaced by the drawn proxy samples and the
    others are returned unchanged, ``K(x~ | x) = mix * p_proxy(x~) + (1 - mix) * delta_x(x~)``.
    Applied to the curated training data, whose own recovered histogram is the prior up to
    sampling, this gives ``q_hat = p + mix * (q_proxy - p)`` per bin in expectation. Why: a
    proxy trained for a fraction of the budget drifts in the right pattern but further than the
    full model (more under-training error), so the size of its drift needs a correction its
    shape does not. ``mix = 0`` returns ``x`` exactly; ``mix = 1`` draws exactly what the
    unshrunk kernel draws from the same ``rng``.
    """

    IDENTITY = None

    def __init__(self, samples, mix: float = 1.0):
        self.samples = _f32(check_trajectories(samples, "samples"))
        self.mix = float(mix)
        if not (0.0 <= self.mix <= 1.0):
            raise ValueError("mix must lie in [0, 1] (the weight of the proxy's samples); "
                             f"got {mix!r}")

    def params(self) -> dict:
        """The constructor parameters, ``{"samples": ..., "mix": ...}``."""
        return {"samples": self.samples, "mix": self.mix}

    def perturb(self, x, rng=None) -> np.ndarray:
        """``len(x)`` proxy samples (each kept with probability ``mix``, else the row of
        ``x``), float32 of ``x``'s shape; ``x`` must have the samples' ``(L, d)``."""
        _, length, d = self.samples.shape
        x = check_trajectories(x, "x", length=length, channels=d)
        n, pool = x.shape[0], self.samples.shape[0]
        rng = as_rng(rng)
        # The proxy rows are drawn first and the same way for every mix, so that mix = 1
        # consumes the random stream exactly as the unshrunk kernel does.
        pick = rng.choice(pool, size=n, replace=n > pool)
        drawn = self.samples[pick].copy()
        if self.mix == 1.0:
            return drawn
        # Exactly round(mix * n) rows, at random positions, take the proxy's sample: a per-row
        # coin would add binomial noise to every bin of q_hat on top of the training data's own
        # sampling noise.
        take = np.zeros(n, dtype=bool)
        take[rng.choice(n, size=int(round(self.mix * n)), replace=False)] = True
        return np.where(take[:, None, None], drawn, _f32(x))

    def __repr__(self) -> str:
        if self.mix == 1.0:
            return f"ProxySamples(n_samples={self.samples.shape[0]})"
        return f"ProxySamples(n_samples={self.samples.shape[0]}, mix={self.mix:.3g})"
