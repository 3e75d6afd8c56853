"""A kernel's prediction of the recovered distribution, and how well it agrees (Chapters 2, 6).

``predict_recovered`` (Chapter 2) recovers the control from kernel-perturbed trajectories: the
prediction ``q_hat = M#(K o p_data)`` of a model's recovered distribution ``q``. ``agreement``
(Chapter 6) scores ``q_hat`` against an observed ``q``; ``ef_ceiling`` gives the explained
fraction an exact prediction would score at the same sample sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import as_rng, check_level, check_positive_int, check_values
from ..metrics import (as_prior, pearson, prior_mean, prior_probs, recovered_histogram, spearman,
                       total_variation)

__all__ = ["predict_recovered", "Agreement", "agreement", "ef_ceiling"]


def predict_recovered(task, kernel, x, rng=None) -> np.ndarray:
    """``q_hat`` samples: the recovered controls of kernel-perturbed trajectories ``x``
    (Chapter 2).

    ``NaN`` marks failed recoveries, as in ``task.measure``.
    """
    if not hasattr(kernel, "perturb"):
        raise ValueError(f"kernel must have a perturb(x, rng) method; got {type(kernel).__name__}")
    return task.measure(kernel.perturb(x, rng))


@dataclass
class Agreement:
    """How well a kernel's prediction ``q_hat`` matches an observed ``q`` (Chapter 6).

    ``pearson`` and ``spearman``: correlation over bins (overflow bins included) of the shifts
    ``dq_hat = q_hat - p`` and ``dq = q - p`` (``NaN`` when either shift is constant).
    ``inside_pearson``: the same Pearson over the bins inside ``[lo, hi]`` only (the two overflow
    bins dropped), which a model that puts much of its mass out of range cannot inflate.
    ``sign_agree``: the mean recovered value moves the same way from the prior mean in both.
    ``explained_fraction``: ``EF = 1 - TV(q_hat, q) / TV(p, q)``; 0 is no better than predicting
    no drift, negative is worse than that. 1 is reached only without sampling noise: a
    prediction that is exact in expectation scores ``ef_ceiling`` (median, 5% and 95% quantile)
    at these sample sizes (:func:`ef_ceiling`), and an EF is read against that, not against 1.
    ``tv_predicted``/``tv_observed``: distance of ``q_hat``/``q`` to the prior.

    Failed recoveries: the scores above describe the finite values. ``explained_fraction_failures``
    is EF with one more bin holding the failures (where the prior puts no mass), so a kernel
    that predicts no failures for a model whose recoveries fail is penalised by the failed mass;
    the printed summary shows both failure fractions. ``oos_predicted``/``oos_observed``: the
    fraction of all values outside ``[lo, hi]`` or failed (``NaN``).
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
    inside_pearson: float = float("nan")
    oos_predicted: float = float("nan")
    oos_observed: float = float("nan")

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
                f"  failed: predicted {self.n_failed_predicted} "
                f"({self.failed_fraction_predicted:.1%}), "
                f"observed {self.n_failed_observed} ({self.failed_fraction_observed:.1%}); "
                "explained fraction with failures as a bin "
                f"{self.explained_fraction_failures:.3f}")

    def _repr_pretty_(self, printer, cycle):
        printer.text(str(self))


def _with_failure_bin(h) -> np.ndarray:
    """All values' distribution: the histogram's bins over ``n_total``, then the failed
    fraction."""
    return np.append(h.counts / h.n_total, h.failed_fraction)


def _outside(values: np.ndarray, lo: float, hi: float) -> float:
    """Fraction of ``values`` outside ``[lo, hi]`` or failed (``NaN``)."""
    with np.errstate(invalid="ignore"):
        return float(np.mean(~((values >= lo) & (values <= hi))))


def ef_ceiling(prior, observed_values, n_predicted: int, bins: int = 20, n_rep: int = 500,
               level: float = 0.9, rng=0) -> tuple[float, float, float]:
    """The explained fraction an exact prediction would score at these sample sizes
    (Chapter 6).

    A noise ceiling: the observed histogram ``q`` (finite values) is taken as the truth;
    ``n_rep`` times, a prediction of ``n_predicted`` values and an observation of as many finite
    values as ``observed_values`` holds are drawn from it, and
    ``EF = 1 - TV(q_hat, q) / TV(p, q)`` is computed. Returns the median and the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles. Sampling noise in both histograms
    keeps EF below 1 even for a perfect kernel, the more so the smaller the drift ``TV(p, q)``
    is against that noise. ``n_predicted`` counts the prediction's finite values.
    """
    prior = as_prior(prior)
    observed_values = check_values(observed_values, "observed_values", allow_nan=True)
    n_predicted = check_positive_int(n_predicted, "n_predicted")
    n_rep = check_positive_int(n_rep, "n_rep")
    level = check_level(level, "level")
    h = recovered_histogram(observed_values, prior.lo, prior.hi, bins)
    if h.n_finite == 0:
        raise ValueError(f"observed_values: all {h.n_total} recoveries failed; "
                         "there is no q to sample")
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
    kernel-perturbed data (:func:`predict_recovered`); ``observed_values``: recovered controls
    of a model's samples. ``NaN`` values are failures, counted in the result and in
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
    dq_hat, dq = q_hat - p, q - p
    return Agreement(
        pearson=pearson(dq_hat, dq), spearman=spearman(dq_hat, dq),
        sign_agree=bool(np.sign(shift_pred) == np.sign(shift_obs)),
        explained_fraction=float(1.0 - tv_between / tv_obs) if tv_obs > 0 else float("nan"),
        mean_shift_predicted=shift_pred, mean_shift_observed=shift_obs,
        tv_predicted=total_variation(p, q_hat), tv_observed=tv_obs, tv_between=tv_between,
        dq_predicted=dq_hat, dq_observed=dq,
        n_failed_predicted=h_pred.n_failed, n_failed_observed=h_obs.n_failed,
        n_predicted=h_pred.n_total, n_observed=h_obs.n_total,
        explained_fraction_failures=float(ef_f),
        ef_ceiling=(ef_ceiling(prior, observed_values, h_pred.n_finite, bins, rng=rng)
                    if ceiling else None),
        inside_pearson=pearson(dq_hat[1:-1], dq[1:-1]),
        oos_predicted=_outside(predicted_values, prior.lo, prior.hi),
        oos_observed=_outside(observed_values, prior.lo, prior.hi),
    )
