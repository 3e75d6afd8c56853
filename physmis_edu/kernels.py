"""Data deviation kernels: what a model class produces in place of a training trajectory.

Introduced in Chapter 2 (Gaussian, Smooth, predict_recovered on the toy system); calibration, Empirical and agreement scores in Chapter 6.
A kernel ``K(x~ | x)`` perturbs training trajectories the way a model class errs; recovering the
control from the perturbed data gives the prediction ``q_hat = M#(K o p_data)`` of the model's
recovered distribution ``q``, before (or without) training. Calibration chooses a kernel's scale
from statistics that never use the control ``c``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from ._validation import as_rng, check_nonnegative, check_positive, check_positive_int, check_trajectories, check_values
from ._validation import check_level
from .metrics import (as_prior, pearson, prior_mean, prior_probs, recovered_histogram, spearman,
                      total_variation, wasserstein_distance)

__all__ = [
    "Gaussian", "Smooth", "Empirical", "nearest_neighbours", "nn_distances",
    "Calibration", "calibrate", "predict_recovered", "Agreement", "agreement", "ef_ceiling",
]


def _as_float32(x) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Kernel families
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Gaussian:
    """White noise ``x~ = x + sigma * eps``, ``eps`` i.i.d. standard normal (Chapter 2)."""

    sigma: float

    def __post_init__(self):
        object.__setattr__(self, "sigma", check_nonnegative(self.sigma, "sigma"))

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
    """``A`` with ``A A^T`` = the squared-exponential correlation ``exp(-(i-j)^2 / (2 ell^2))``, unit diagonal."""
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
    """

    sigma: float
    ell: float

    def __post_init__(self):
        object.__setattr__(self, "sigma", check_nonnegative(self.sigma, "sigma"))
        object.__setattr__(self, "ell", check_positive(self.ell, "ell (correlation length in steps)"))

    def noise(self, shape, rng=None) -> np.ndarray:
        """Correlated unit-std noise of ``shape = (n, L, d)`` (float32)."""
        if not isinstance(shape, (tuple, list)) or len(shape) != 3:
            raise ValueError(f"shape must be (n, L, d), three positive integers; got {shape!r}")
        n, length, d = (check_positive_int(v, f"shape[{i}]") for i, v in enumerate(shape))
        # Time last in memory: one (n d, L) x (L, L) product, and for d = 1 no strided copy after it.
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
    """Residuals between a model's samples and their nearest training trajectory, resampled (Chapter 6).

    ``perturb`` adds ``scale`` times a randomly drawn residual ``x~_j - NN(x~_j)`` to each
    trajectory. Build it with :meth:`from_samples`. Beware on chaotic data: a sample that is a
    genuinely new trajectory also leaves a residual, so the kernel predicts drift even for a
    perfect model (test it with true samples as "model samples").
    """

    def __init__(self, residuals, scale: float = 1.0):
        self.residuals = _as_float32(check_trajectories(residuals, "residuals"))
        self.scale = check_nonnegative(scale, "scale")

    @classmethod
    def from_samples(cls, train, samples, rng=None, max_samples: int | None = None, scale: float = 1.0) -> "Empirical":
        """Residuals of ``samples`` against their nearest neighbour in ``train``.

        ``max_samples`` keeps a random subset of the samples (drawn with ``rng``) to bound the cost.
        """
        train = check_trajectories(train, "train")
        samples = check_trajectories(samples, "samples", length=train.shape[1], channels=train.shape[2])
        if max_samples is not None:
            max_samples = check_positive_int(max_samples, "max_samples")
            if samples.shape[0] > max_samples:
                samples = samples[np.sort(as_rng(rng).choice(samples.shape[0], max_samples, replace=False))]
        _, idx = nearest_neighbours(samples, train)
        return cls(samples - train[idx], scale=scale)

    def with_scale(self, scale: float) -> "Empirical":
        """The same residuals at another scale (for :func:`calibrate`)."""
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
        return f"Empirical(n_residuals={self.residuals.shape[0]}, scale={self.scale:g}, residual_rms={rms:.4g})"


# ---------------------------------------------------------------------------------------------
# Nearest neighbours (calibration statistic, Empirical kernel)
# ---------------------------------------------------------------------------------------------

def nearest_neighbours(query, reference, chunk_elements: int = 8_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from each query trajectory to its nearest reference trajectory, and its index.

    Introduced in Chapter 6. Trajectories are compared as flat vectors of length ``L * d``.
    The search runs in float32 matrix products, chunked to about ``chunk_elements`` distances at a
    time; the returned distance is then recomputed exactly (float64) for the neighbour found.
    """
    query = check_trajectories(query, "query")
    reference = check_trajectories(reference, "reference", length=query.shape[1], channels=query.shape[2])
    q64 = query.reshape(query.shape[0], -1)
    r64 = reference.reshape(reference.shape[0], -1)
    # Centring keeps the norms small, so |q|^2 - 2 q.r + |r|^2 loses little to cancellation.
    centre = r64.mean(axis=0)
    q32 = (q64 - centre).astype(np.float32)
    r32 = (r64 - centre).astype(np.float32)
    r_norm = np.einsum("ij,ij->i", r32, r32)
    idx = np.empty(q32.shape[0], dtype=np.int64)
    step = max(1, int(chunk_elements) // r32.shape[0])
    for start in range(0, q32.shape[0], step):
        block = q32[start:start + step]
        d2 = r_norm[None, :] - 2.0 * (block @ r32.T)  # |q|^2 is constant per row: not needed for argmin
        idx[start:start + step] = np.argmin(d2, axis=1)
    dist = np.sqrt(np.sum((q64 - r64[idx]) ** 2, axis=1))
    return dist, idx


def nn_distances(query, reference) -> np.ndarray:
    """Distance from each query trajectory to its nearest reference trajectory (Chapter 6)."""
    return nearest_neighbours(query, reference)[0]


# ---------------------------------------------------------------------------------------------
# Calibration from c-free statistics
# ---------------------------------------------------------------------------------------------

@dataclass
class Calibration:
    """Result of :func:`calibrate` (Chapter 6): the kernel at the chosen scale and how it was chosen."""

    kernel: object
    scale: float
    grid: np.ndarray
    losses: np.ndarray
    target_median: float
    fitted_median: float
    at_edge: bool

    def __str__(self) -> str:
        edge = "  (at the edge of the grid: widen it)" if self.at_edge else ""
        return (f"calibrated {self.kernel!r}: scale {self.scale:.4g}, W1 of NN distances {self.losses.min():.3g}; "
                f"median NN distance model {self.target_median:.4g} vs kernel {self.fitted_median:.4g}{edge}")


def calibrate(kernel_factory, train, samples, grid=None, rng=None, n_perturb: int = 1000,
              refine: bool = True) -> Calibration:
    """Choose a kernel's scale so that kernel-perturbed training data sit as far from the training
    set as the model's samples do (Chapter 6).

    The statistic is the distribution of nearest-training-neighbour distances: the scale minimises
    the Wasserstein-1 distance between that distribution for ``kernel_factory(scale).perturb(train)``
    and for ``samples``. Only trajectories enter: the control ``c`` is never read, so the kernel's
    prediction is not fitted to the answer.

    Parameters
    ----------
    kernel_factory : callable ``scale -> kernel``, e.g. ``Gaussian`` or ``lambda s: Smooth(s, ell=4)``.
    train, samples : trajectories ``(n, L, d)``: the training set and a model's samples.
    grid : scales to try; default 31 values geometric from ``1e-3`` to ``1`` times the data's std,
        then (``refine``) a golden-section search between the best point's neighbours.
    n_perturb : number of training trajectories perturbed per trial (a random subset).

    The same random numbers are used at every scale, so the loss is a smooth function of it.
    A perturbed trajectory's nearest neighbour may be its own source; that is intended (a model
    sample close to a training trajectory sees the same).
    """
    if not callable(kernel_factory):
        raise ValueError("kernel_factory must be a callable scale -> kernel (e.g. Gaussian)")
    train = check_trajectories(train, "train")
    samples = check_trajectories(samples, "samples", length=train.shape[1], channels=train.shape[2])
    n_perturb = check_positive_int(n_perturb, "n_perturb")
    rng = as_rng(rng)
    target = nn_distances(samples, train)
    subset = train[np.sort(rng.choice(train.shape[0], min(n_perturb, train.shape[0]), replace=False))]
    seed = int(rng.integers(2 ** 63))

    def distances(scale):
        kernel = kernel_factory(float(scale))
        if not hasattr(kernel, "perturb"):
            raise ValueError("kernel_factory(scale) must return a kernel with a perturb(x, rng) method")
        return nn_distances(kernel.perturb(subset, np.random.default_rng(seed)), train)

    def loss(scale):
        return wasserstein_distance(distances(scale), target)

    default_grid = grid is None
    if default_grid:
        grid = float(np.std(train)) * np.geomspace(1e-3, 1.0, 31)
    grid = check_values(grid, "grid")
    if (grid < 0).any():
        raise ValueError("grid must contain scales >= 0")
    grid = np.unique(grid)
    losses = np.array([loss(s) for s in grid])
    best = int(np.argmin(losses))
    at_edge = grid.size > 1 and best in (0, grid.size - 1) and losses[best] > 0
    scale = float(grid[best])
    if refine and 0 < best < grid.size - 1:
        scale = _golden_section(loss, float(grid[best - 1]), float(grid[best + 1]), float(grid[best]), losses[best])
    if at_edge:
        warnings.warn(f"calibrate: best scale {scale:g} is at the edge of the grid "
                      f"[{grid[0]:g}, {grid[-1]:g}]; the fit may need a wider grid", stacklevel=2)
    fitted = distances(scale)
    return Calibration(kernel=kernel_factory(scale), scale=scale, grid=grid, losses=losses,
                       target_median=float(np.median(target)), fitted_median=float(np.median(fitted)),
                       at_edge=bool(at_edge))


def _golden_section(f, a: float, b: float, x_best: float, f_best: float, iters: int = 12) -> float:
    ratio = 0.5 * (np.sqrt(5.0) - 1.0)
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(iters):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = f(d)
    candidates = [(f_best, x_best), (fc, c), (fd, d)]
    return float(min(candidates)[1])


# ---------------------------------------------------------------------------------------------
# Prediction and agreement
# ---------------------------------------------------------------------------------------------

def predict_recovered(task, kernel, x, rng=None) -> np.ndarray:
    """``q_hat`` samples: the recovered controls of kernel-perturbed trajectories ``x`` (Chapter 2).

    ``NaN`` marks failed recoveries, as in ``task.measure``.
    """
    if not hasattr(kernel, "perturb"):
        raise ValueError(f"kernel must have a perturb(x, rng) method; got {type(kernel).__name__}")
    return task.measure(kernel.perturb(x, rng))


# Kept for physmis_edu.panel until it imports metrics.pearson / metrics.spearman itself.
_pearson, _spearman = pearson, spearman


@dataclass
class Agreement:
    """How well a kernel's prediction ``q_hat`` matches an observed ``q`` (Chapter 6).

    ``pearson`` and ``spearman``: correlation over bins (overflow bins included) of the shifts
    ``dq_hat = q_hat - p`` and ``dq = q - p`` (``NaN`` when either shift is constant).
    ``sign_agree``: the mean recovered value moves the same way from the prior mean in both.
    ``explained_fraction``: ``EF = 1 - TV(q_hat, q) / TV(p, q)``; 0 is no better than predicting no
    drift, negative is worse than that. 1 is reached only without sampling noise: a prediction
    that is exact in expectation scores ``ef_ceiling`` (median, 5% and 95% quantile) at these
    sample sizes (:func:`ef_ceiling`), and an EF is read against that, not against 1.

    Failed recoveries: the scores above describe the finite values. ``explained_fraction_failures``
    is EF with one more bin holding the failures (where the prior puts no mass), so a kernel that
    predicts no failures for a model whose recoveries fail is penalised by the failed mass; the
    printed summary shows both failure fractions.
    """

    pearson: float
    spearman: float
    sign_agree: bool
    explained_fraction: float
    mean_shift_predicted: float
    mean_shift_observed: float
    tv_predicted: float
    tv_observed: float
    tv_between: float
    dq_predicted: np.ndarray
    dq_observed: np.ndarray
    n_failed_predicted: int
    n_failed_observed: int
    n_predicted: int = 0
    n_observed: int = 0
    explained_fraction_failures: float = float("nan")
    ef_ceiling: tuple | None = None

    @property
    def failed_fraction_predicted(self) -> float:
        return self.n_failed_predicted / self.n_predicted if self.n_predicted else float("nan")

    @property
    def failed_fraction_observed(self) -> float:
        return self.n_failed_observed / self.n_observed if self.n_observed else float("nan")

    def __str__(self) -> str:
        sign = "agrees" if self.sign_agree else "DISAGREES"
        ceiling = ""
        if self.ef_ceiling is not None:
            ceiling = (f" (an exact prediction at these sample sizes: {self.ef_ceiling[0]:.3f}, "
                       f"5-95% {self.ef_ceiling[1]:.3f} to {self.ef_ceiling[2]:.3f})")
        return (f"agreement of q_hat with q over {self.dq_observed.size} bins: "
                f"Pearson {self.pearson:.3f}, Spearman {self.spearman:.3f}, "
                f"explained fraction {self.explained_fraction:.3f}{ceiling}\n"
                f"  mean shift: predicted {self.mean_shift_predicted:+.4g}, "
                f"observed {self.mean_shift_observed:+.4g} (sign {sign})\n"
                f"  TV(p, q_hat) {self.tv_predicted:.4f}, TV(p, q) {self.tv_observed:.4f}, "
                f"TV(q_hat, q) {self.tv_between:.4f}\n"
                f"  failed: predicted {self.n_failed_predicted} ({self.failed_fraction_predicted:.1%}), "
                f"observed {self.n_failed_observed} ({self.failed_fraction_observed:.1%}); "
                f"explained fraction with failures as a bin {self.explained_fraction_failures:.3f}")

    def _repr_pretty_(self, printer, cycle):
        printer.text(str(self))


def _with_failure_bin(h) -> np.ndarray:
    """All values' distribution: the histogram's bins over ``n_total``, then the failed fraction."""
    return np.append(h.counts / h.n_total, h.failed_fraction)


def ef_ceiling(prior, observed_values, n_predicted: int, bins: int = 20, n_rep: int = 500,
               level: float = 0.9, rng=0) -> tuple[float, float, float]:
    """The explained fraction an exact prediction would score at these sample sizes (Chapter 6).

    A noise ceiling: the observed histogram ``q`` (finite values) is taken as the truth; ``n_rep``
    times, a prediction of ``n_predicted`` values and an observation of as many finite values as
    ``observed_values`` holds are drawn from it, and ``EF = 1 - TV(q_hat, q) / TV(p, q)`` is
    computed. Returns the median and the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles.
    Sampling noise in both histograms keeps EF below 1 even for a perfect kernel, the more so
    the smaller the drift ``TV(p, q)`` is against that noise.
    ``n_predicted`` counts the prediction's finite values.
    """
    prior = as_prior(prior)
    observed_values = check_values(observed_values, "observed_values", allow_nan=True)
    n_predicted = check_positive_int(n_predicted, "n_predicted")
    n_rep = check_positive_int(n_rep, "n_rep")
    level = check_level(level, "level")
    h = recovered_histogram(observed_values, prior.lo, prior.hi, bins)
    if h.n_finite == 0:
        raise ValueError(f"observed_values: all {h.n_total} recoveries failed; there is no q to sample")
    p, q = prior_probs(prior, bins), h.probs
    rng = as_rng(rng)
    pred = rng.multinomial(n_predicted, q, size=n_rep) / n_predicted
    obs = rng.multinomial(h.n_finite, q, size=n_rep) / h.n_finite
    tv_obs = 0.5 * np.abs(obs - p).sum(axis=1)
    ef = 1.0 - 0.5 * np.abs(pred - obs).sum(axis=1) / np.where(tv_obs > 0, tv_obs, np.nan)
    ef = ef[np.isfinite(ef)]
    if ef.size == 0:
        raise ValueError("every simulated observation equals the prior exactly; EF is undefined")
    tail = 0.5 * (1.0 - level)
    median, lo, hi = np.quantile(ef, [0.5, tail, 1.0 - tail])
    return float(median), float(lo), float(hi)


def agreement(prior, predicted_values, observed_values, bins: int = 20, ceiling: bool = True,
              rng=0) -> Agreement:
    """Compare a kernel prediction with an observed recovered distribution (Chapter 6).

    ``prior``: the ``Prior`` (or a ``Task``); ``predicted_values``: recovered controls of
    kernel-perturbed data (:func:`predict_recovered`); ``observed_values``: recovered controls of
    a model's samples. ``NaN`` values are failures, counted in the result and in
    ``explained_fraction_failures``. ``ceiling``: also compute :func:`ef_ceiling` (with ``rng``,
    a fixed seed by default so that the same inputs give the same result).
    """
    prior = as_prior(prior)
    predicted_values = check_values(predicted_values, "predicted_values", allow_nan=True)
    observed_values = check_values(observed_values, "observed_values", allow_nan=True)
    if not isinstance(ceiling, bool):
        raise ValueError(f"ceiling must be True or False; got {ceiling!r}")
    p = prior_probs(prior, bins)
    h_pred = recovered_histogram(predicted_values, prior.lo, prior.hi, bins)
    h_obs = recovered_histogram(observed_values, prior.lo, prior.hi, bins)
    for name, h in (("predicted_values", h_pred), ("observed_values", h_obs)):
        if h.n_finite == 0:
            raise ValueError(f"{name}: all {h.n_total} recoveries failed; nothing to compare")
    q_hat, q = h_pred.probs, h_obs.probs
    mean_p = prior_mean(prior)
    shift_pred = float(np.nanmean(predicted_values) - mean_p)
    shift_obs = float(np.nanmean(observed_values) - mean_p)
    tv_obs = total_variation(p, q)
    tv_between = total_variation(q_hat, q)
    p_f, q_hat_f, q_f = np.append(p, 0.0), _with_failure_bin(h_pred), _with_failure_bin(h_obs)
    tv_obs_f = 0.5 * np.abs(p_f - q_f).sum()
    ef_f = 1.0 - 0.5 * np.abs(q_hat_f - q_f).sum() / tv_obs_f if tv_obs_f > 0 else float("nan")
    return Agreement(
        pearson=pearson(q_hat - p, q - p), spearman=spearman(q_hat - p, q - p),
        sign_agree=bool(np.sign(shift_pred) == np.sign(shift_obs)),
        explained_fraction=float(1.0 - tv_between / tv_obs) if tv_obs > 0 else float("nan"),
        mean_shift_predicted=shift_pred, mean_shift_observed=shift_obs,
        tv_predicted=total_variation(p, q_hat), tv_observed=tv_obs, tv_between=tv_between,
        dq_predicted=q_hat - p, dq_observed=q - p,
        n_failed_predicted=h_pred.n_failed, n_failed_observed=h_obs.n_failed,
        n_predicted=h_pred.n_total, n_observed=h_obs.n_total, explained_fraction_failures=float(ef_f),
        ef_ceiling=ef_ceiling(prior, observed_values, h_pred.n_finite, bins, rng=rng) if ceiling else None,
    )
