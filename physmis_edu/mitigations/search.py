"""Choosing a representation by the drift a kernel predicts for it (Chapter 10).

The kernel acts where the model errs: in the model's own coordinates, which are the
representation's ``y`` standardised per channel (every model class of the library standardises
its input per channel in ``fit``). A perturbed ``y`` is decoded and measured, so the prediction
for a candidate costs one encoding, one perturbation, one decoding and one recovery: no training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import as_rng, check_trajectories
from ..kernels import Gaussian, calibrate
from ..metrics import prior_probs, recovered_histogram, spearman, tv_with_failures

__all__ = ["ModelCoordinates", "calibrate_in_model_coordinates", "predicted_drift",
           "Candidate", "rank_representations", "rank_agreement", "default_candidates"]


class ModelCoordinates:
    """Per-channel standardisation of ``rep.encode(x)``, fitted on the training set, as a model
    class applies it before it learns anything."""

    def __init__(self, representation, train):
        y = representation.encode(check_trajectories(train, "train"))
        self.representation = representation
        self.mean = y.mean(axis=(0, 1))
        std = y.std(axis=(0, 1))
        self.std = np.where(std > 1e-8, std, 1.0)

    def to_model(self, x) -> np.ndarray:
        return ((self.representation.encode(x) - self.mean) / self.std).astype(np.float32)

    def from_model(self, z) -> np.ndarray:
        return self.representation.decode(np.asarray(z) * self.std + self.mean)


def calibrate_in_model_coordinates(train, samples, kernel_factory=Gaussian, rng=None, **kwargs):
    """Calibrate a kernel's scale on a baseline model's samples (Chapter 10), in the baseline's
    model coordinates (the data standardised per channel): :func:`physmis_edu.kernels.calibrate`
    on nearest-neighbour distances there. ``c`` is never read."""
    from .coordinates import Identity

    coords = ModelCoordinates(Identity(), train)
    return calibrate(kernel_factory, coords.to_model(train), coords.to_model(samples),
                     rng=rng, **kwargs)


def predicted_drift(task, representation, train, kernel, rng=None, bins: int = 20) -> dict:
    """The drift ``kernel`` predicts for a model trained in ``representation`` (Chapter 10).

    The kernel perturbs the standardised ``y`` of the training trajectories; the result is
    decoded and measured. Returns ``tv`` (failures counted as misplaced mass), ``outside``
    (recovered mass outside the prior's range, failures included), the histogram's
    ``probs`` and the recovered ``values``.
    """
    train = check_trajectories(train, "train")
    coords = ModelCoordinates(representation, train)
    z = kernel.perturb(coords.to_model(train), as_rng(rng))
    values = task.measure(coords.from_model(z))
    hist = recovered_histogram(values, task.lo, task.hi, bins)
    p = prior_probs(task.prior, bins)
    n = hist.n_total
    outside = (hist.counts[0] + hist.counts[-1] + hist.n_failed) / n
    return dict(tv=tv_with_failures(p, hist), outside=float(outside),
                probs=hist.probs, values=values)


@dataclass
class Candidate:
    """One scored representation: its predicted TV, out-of-range mass and recovered
    histogram (``predicted_probs``: below the range, the bins, above it)."""

    representation: object
    predicted_tv: float
    predicted_outside: float
    predicted_probs: np.ndarray | None = None

    @property
    def label(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.representation.params().items()
                           if k not in ("lo", "hi", "eps"))
        return f"{type(self.representation).__name__}({params})"


def rank_representations(task, candidates, train, kernel, rng=None, bins: int = 20):
    """Score each candidate representation by :func:`predicted_drift` and sort them, lowest
    predicted TV first (Chapter 10). The same random numbers serve every candidate."""
    candidates = list(candidates)
    if not candidates:
        raise ValueError("candidates must hold at least one representation")
    seed = int(as_rng(rng).integers(2 ** 63))
    scored = []
    for rep in candidates:
        d = predicted_drift(task, rep, train, kernel, np.random.default_rng(seed), bins)
        scored.append(Candidate(rep, d["tv"], d["outside"], d["probs"]))
    return sorted(scored, key=lambda c: c.predicted_tv)


def rank_agreement(predicted, measured) -> float:
    """Spearman correlation between predicted and measured drift over candidates."""
    return spearman(predicted, measured)


def default_candidates(task) -> list:
    """The candidate representations searched for ``task`` (Chapter 10): generic maps that any
    task admits (spectral and time weights), warps that suit the task's channels, and the
    task-aware coordinates in which the recovery is a reading of one channel."""
    from ..tasks import DoublePendulum, LogisticMap, MazeTask
    from .coordinates import (ArcLength, Identity, LogisticRatio, PendulumEnergy, Polar,
                              SpectralScale, TailWarp, TimeScale, Warp)

    out = [Identity(), SpectralScale(0.5), SpectralScale(-0.25), TimeScale(1.0),
           TimeScale(-1.0)]
    if isinstance(task, LogisticMap):
        out += [Warp("arcsine", 0.0, 1.0), Warp("logit", 0.0, 1.0), LogisticRatio()]
    elif isinstance(task, DoublePendulum) and task.representation == "sincos":
        velocities = (4, 5)
        out += [TailWarp("asinh", 2.0, velocities), TailWarp("asinh", 8.0, velocities),
                TailWarp("sinh", 4.0, velocities), Warp("arcsine", -1.0, 1.0, (0, 1, 2, 3)),
                Polar((velocities,)), PendulumEnergy.for_task(task),
                PendulumEnergy.for_task(task, warp_energy=True)]
    elif isinstance(task, MazeTask) and not task.velocities:
        out += [ArcLength(total=False), ArcLength(total=True)]
    return out
