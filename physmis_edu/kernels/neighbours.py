"""Nearest-neighbour search between sets of trajectories (Chapter 6).

Trajectories ``(n, L, d)`` are compared as flat vectors of length ``L * d`` in the Euclidean
norm. One search, :func:`k_nearest`, serves every caller: the calibration statistic (distance
to the nearest training trajectory, :func:`nearest_neighbours`), the
:class:`~physmis_edu.kernels.Empirical` kernel (residual to the nearest training trajectory),
the pulled kernels (their ``k`` nearest training trajectories) and the store's sample checks.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_positive_int, check_trajectories

__all__ = ["nearest_neighbours", "nn_distances", "k_nearest"]


def _pair(query, reference) -> tuple[np.ndarray, np.ndarray]:
    query = check_trajectories(query, "query")
    reference = check_trajectories(reference, "reference", length=query.shape[1],
                                   channels=query.shape[2])
    return query, reference


def k_nearest(query, reference, k: int, exclude_exact: bool = True,
              chunk_elements: int = 4_000_000) -> np.ndarray:
    """Indices ``(n, k)`` of each query trajectory's ``k`` nearest reference trajectories,
    nearest first (Chapter 6).

    ``exclude_exact``: a reference trajectory equal to the query row (squared distance below
    ``1e-5`` times the mean squared norm of the centred reference, the floor of float32
    cancellation) is never returned, so a training trajectory is not its own neighbour; ``k``
    is then capped at ``n_reference - 1`` columns, else at ``n_reference``. The search runs in
    float32 matrix products on data centred (in float64) on the reference mean, which keeps
    ``|q|^2 - 2 q.r + |r|^2`` clear of cancellation, chunked to about ``chunk_elements``
    distances at a time; near-ties are ordered as float32 sees them, exact ties by index.
    """
    query, reference = _pair(query, reference)
    k = check_positive_int(k, "k")
    if not isinstance(exclude_exact, bool):
        raise ValueError(f"exclude_exact must be True or False; got {exclude_exact!r}")
    if exclude_exact and reference.shape[0] < 2:
        raise ValueError("reference must hold at least 2 trajectories when exclude_exact is True "
                         f"(one may be the query itself); got {reference.shape[0]}")
    q64 = query.reshape(query.shape[0], -1)
    r64 = reference.reshape(reference.shape[0], -1)
    centre = r64.mean(axis=0)
    q = (q64 - centre).astype(np.float32)
    r = (r64 - centre).astype(np.float32)
    norms = np.einsum("ij,ij->i", r, r)
    k = min(k, r.shape[0] - 1 if exclude_exact else r.shape[0])
    out = np.empty((q.shape[0], k), dtype=np.int64)
    step = max(1, int(chunk_elements) // r.shape[0])
    for start in range(0, q.shape[0], step):
        block = q[start:start + step]
        # |q|^2 is the same along a row, so the order needs only |r|^2 - 2 q.r; the exact-copy
        # test needs the whole squared distance.
        d2 = norms[None, :] - 2.0 * (block @ r.T)
        if exclude_exact:
            d2 += np.einsum("ij,ij->i", block, block)[:, None]
            # float32 cancellation leaves ~1e-6 relative error: a copy of the row itself sits
            # below this floor.
            d2[d2 < 1e-5 * (1e-12 + norms.mean())] = np.inf
        if k == 1:
            out[start:start + step, 0] = np.argmin(d2, axis=1)
            continue
        part = np.argpartition(d2, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(d2, part, axis=1), axis=1, kind="stable")
        out[start:start + step] = np.take_along_axis(part, order, axis=1)
    return out


def nearest_neighbours(query, reference,
                       chunk_elements: int = 8_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from each query trajectory to its nearest reference trajectory, and
    its index (Chapter 6).

    The neighbour is found by :func:`k_nearest` (float32, the query's own copy allowed); the
    returned distance is then recomputed exactly (float64) for the neighbour found.
    """
    query, reference = _pair(query, reference)
    idx = k_nearest(query, reference, 1, exclude_exact=False,
                    chunk_elements=chunk_elements)[:, 0]
    flat_q = query.reshape(query.shape[0], -1)
    flat_r = reference.reshape(reference.shape[0], -1)
    return np.sqrt(np.sum((flat_q - flat_r[idx]) ** 2, axis=1)), idx


def nn_distances(query, reference) -> np.ndarray:
    """Distance from each query trajectory to its nearest reference trajectory (Chapter 6)."""
    return nearest_neighbours(query, reference)[0]
