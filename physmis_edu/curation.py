"""Curating a dataset whose recovered control follows a prior (Chapter 1; the maze task uses it).

When ``c`` is not an input of the generator (the maze: travel distance is whatever the
controller's path turns out to be), the engineer curates: propose trajectories, measure
``M(x)``, and keep each one only while its bin of the prior still needs examples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._validation import as_rng, check_positive_int
from .metrics import as_prior, bin_edges

__all__ = ["Curated", "curate", "bin_quotas"]


@dataclass
class Curated:
    """A curated dataset (Chapter 1): trajectories ``x``, their measured controls ``c``, the cost.

    ``acceptance_rate = n / n_proposed``; ``extras`` holds the rows of any arrays that
    ``propose`` returned beside the trajectories (e.g. start and goal), in the same order as ``x``.
    """

    x: np.ndarray
    c: np.ndarray
    acceptance_rate: float
    n_proposed: int
    extras: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        keys = f", extras={sorted(self.extras)}" if self.extras else ""
        return (f"Curated(n={self.c.size}, x shape {self.x.shape}, n_proposed={self.n_proposed}, "
                f"acceptance_rate={self.acceptance_rate:.3g}{keys})")


def bin_quotas(prior, n: int, bins: int = 20) -> np.ndarray:
    """How many of ``n`` examples each of ``bins`` equal bins gets under ``prior`` (Chapter 1).

    Largest-remainder rounding, so the quotas sum to exactly ``n``.
    """
    prior = as_prior(prior)
    n = check_positive_int(n, "n")
    probs = np.asarray(prior.bin_probs(bin_edges(prior.lo, prior.hi, bins)), dtype=np.float64)
    ideal = n * probs / probs.sum()
    quotas = np.floor(ideal).astype(np.int64)
    short = n - int(quotas.sum())
    quotas[np.argsort(-(ideal - quotas), kind="stable")[:short]] += 1
    return quotas


def _bin_density_max(prior, edges: np.ndarray, points: int = 65) -> np.ndarray:
    grid = np.linspace(edges[:-1], edges[1:], points, axis=1)  # (bins, points)
    return (np.asarray(prior.density(grid.ravel()), dtype=np.float64)
            .reshape(grid.shape).max(axis=1))


def _split_proposal(out):
    x, extras = (out if isinstance(out, tuple) else (out, {}))
    x = np.asarray(x)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"propose(n, rng) must return at least one candidate; "
                         f"got shape {x.shape}")
    if not isinstance(extras, dict):
        raise ValueError("propose(n, rng) must return x or a tuple (x, extras) "
                         "with extras a dict of arrays")
    extras = {k: np.asarray(v) for k, v in extras.items()}
    for key, value in extras.items():
        if value.ndim < 1 or value.shape[0] != x.shape[0]:
            raise ValueError(f"extras[{key!r}] must have one row per candidate ({x.shape[0]}); "
                             f"got shape {value.shape}")
    return x, extras


def curate(propose, measure, prior, n: int, bins: int = 20, rng=None, batch: int = 1024,
           max_proposals: int | None = None) -> Curated:
    """Stratified rejection: ``n`` trajectories whose measured control follows ``prior``.

    Introduced in Chapter 1.

    Parameters
    ----------
    propose : callable ``(m, rng) -> x`` or ``(x, extras)``, candidate trajectories (and arrays
        that ride along with them, one row per candidate).
    measure : callable ``x -> c``, the recovery ``M`` (``NaN`` for failures; those are rejected).
    prior : the target ``Prior`` (or a ``Task``) on ``[lo, hi]``.
    n : dataset size. Each of ``bins`` equal bins is filled up to its quota from
        ``prior.bin_probs``.
    batch : candidates proposed per call.
    max_proposals : give up after this many candidates (default ``max(200 n, 20 batch)``).

    Within a bin, a candidate of a non-uniform prior is kept with probability
    ``density(c) / max density in its bin``, so the shape inside each bin follows the prior as well
    (exactly when the proposal is flat inside the bin, and to second order otherwise).
    Candidates are taken in the order proposed and the result is shuffled, so row order says
    nothing about the bin. Raises ``ValueError`` naming the bins still short after
    ``max_proposals``, never returns a partial dataset.
    """
    if not callable(propose) or not callable(measure):
        raise ValueError("propose and measure must be callables: "
                         "propose(m, rng) -> x, measure(x) -> c")
    prior = as_prior(prior)
    n = check_positive_int(n, "n")
    batch = check_positive_int(batch, "batch")
    max_proposals = (max(200 * n, 20 * batch) if max_proposals is None
                     else check_positive_int(max_proposals, "max_proposals"))
    rng = as_rng(rng)
    edges = bin_edges(prior.lo, prior.hi, bins)
    need = bin_quotas(prior, n, bins)
    density_max = None if prior.density is None else _bin_density_max(prior, edges)
    kept_x, kept_c, kept_extras = [], [], []
    n_proposed = 0
    while need.any() and n_proposed < max_proposals:
        x, extras = _split_proposal(propose(min(batch, max_proposals - n_proposed), rng))
        c = np.asarray(measure(x), dtype=np.float64)
        if c.shape != (x.shape[0],):
            raise ValueError(f"measure(x) must return one value per candidate, "
                             f"shape ({x.shape[0]},); got {c.shape}")
        n_proposed += x.shape[0]
        ok = np.isfinite(c) & (c >= prior.lo) & (c <= prior.hi)
        idx = np.full(c.shape, -1)
        idx[ok] = np.minimum(np.searchsorted(edges, c[ok], side="right") - 1, bins - 1)
        if density_max is not None:
            thin = rng.random(c.size)
            dens = np.zeros(c.size)
            dens[ok] = np.asarray(prior.density(c[ok]), dtype=np.float64)
            ok &= thin * density_max[np.maximum(idx, 0)] < dens
            idx[~ok] = -1
        take = []
        for b in np.flatnonzero(need):
            rows = np.flatnonzero(idx == b)[: need[b]]
            need[b] -= rows.size
            take.append(rows)
        take = np.sort(np.concatenate(take)) if take else np.empty(0, dtype=np.int64)
        kept_x.append(x[take])
        kept_c.append(c[take])
        kept_extras.append({k: v[take] for k, v in extras.items()})
    if need.any():
        short = np.flatnonzero(need)
        quotas = bin_quotas(prior, n, bins)
        named = ", ".join(f"[{edges[b]:.4g}, {edges[b + 1]:.4g}) "
                          f"has {quotas[b] - need[b]}/{quotas[b]}" for b in short[:10])
        more = f" and {short.size - 10} more" if short.size > 10 else ""
        raise ValueError(f"curate: after {n_proposed} proposals {short.size} bins are still "
                         f"short: {named}{more}. "
                         f"The proposal rarely reaches them; widen it or raise max_proposals.")
    order = rng.permutation(n)
    x = np.concatenate(kept_x)[order]
    c = np.concatenate(kept_c)[order]
    extras = {k: np.concatenate([e[k] for e in kept_extras])[order] for k in kept_extras[0]}
    return Curated(x=x, c=c, acceptance_rate=n / n_proposed, n_proposed=n_proposed, extras=extras)
