"""The kernels the panel scores, and the choices it makes on the tune seed only (Chapter 6).

Held-out protocol: design choices (grids, which family to route each model class to, a cheap
proxy's share of the budget and its shrinkage weight) and the parameters of the *before-training*
kernels are chosen on the cells of one seed (the *tune seed*); the leaderboard reports the
others. A before-training kernel for task T takes the parameters calibrated on the tune seed of a
*different* task (:data:`SOURCE_TASK`) for the same model class and never looks at T's samples.

A *cheap proxy* is the same model class trained on the same task's training data for a share of
its budget (:func:`physmis_edu.panel.train.load_or_train_proxy`). Its samples give the kernels
:func:`proxy_spec`: the proxy's own recovered histogram (``samples``), or its nearest-neighbour
residuals added to the training data (``residuals``), or its histogram shrunk toward the prior
(``ProxySamples(mix=lambda)``).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..kernels import (Compounding, DenoisedNoise, Empirical, Gaussian, NeighbourBlend,
                       ProxySamples, Quantise, Shrinkage, Smooth, Truncation, calibrate)
from .design import PANEL_MODELS
from .score import Context, CellScore, KernelSpec, is_reference
from .store import array_digest
from .tables import median

__all__ = ["SOURCE_TASK", "FAMILIES", "BASELINE_GRID", "baseline_specs", "family_specs",
           "before_training_specs", "PROXY_FRACTIONS", "PROXY_KINDS", "proxy_spec", "SHRINK_GRID",
           "SHRINK_NAMES", "best_lambda", "route_by_tune_seed", "ROUTED", "best_kernels"]

# The task whose tune-seed calibration a before-training kernel borrows (never the task itself).
SOURCE_TASK = {"toy": "sine", "sine": "logistic-chaotic", "logistic-periodic": "sine",
               "logistic-chaotic": "sine", "maze": "pendulum", "pendulum": "maze"}

FAMILIES = {
    "NeighbourBlend": (NeighbourBlend, {"k": [4, 16], "mix": [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
                                        "sigma": [0.0, 0.02]}),
    "Truncation": (Truncation, {"k": [1, 2, 4, 6, 8, 12], "sigma": [0.0, 0.01, 0.05]}),
    "Shrinkage": (Shrinkage, {"tau": list(np.geomspace(1e-4, 1.0, 7)),
                              "sigma": [0.0, 0.01, 0.05]}),
    "Quantise": (Quantise, {"bins": [16, 32, 64, 128], "jitter": [0.0, 0.5, 1.0]}),
    "Compounding": (Compounding, {"sigma": list(np.geomspace(1e-3, 0.3, 7)),
                                  "rho": [0.0, 0.7, 1.0]}),
    # Shape (k, pull, bandwidth) chosen on a tune-seed run by benchmarks/kernel_mass.py.
    "DenoisedNoise": (DenoisedNoise, {"sigma": list(np.geomspace(0.01, 1.0, 13)),
                                      "pull": [0.9], "k": [8], "bandwidth": [2.0]}),
}
# The baselines' scale grid (kernels.calibrate): zero (the identity, so that a perfect model's
# samples can choose "no perturbation") and 21 geometric points, no golden-section refinement, to
# keep the panel's kernel scoring to minutes. The families' grids get their identity from
# calibrate (each class's IDENTITY).
BASELINE_GRID = np.concatenate([[0.0], np.geomspace(1e-3, 1.0, 21)])


def _fit_family(name, train, samples, rng, context):
    factory, grid = FAMILIES[name]
    return calibrate(factory, train, samples, grid=grid, statistic="quantiles",
                     residual=context.residual, rng=rng, n_perturb=500)


def baseline_specs() -> list[KernelSpec]:
    """The three baselines calibrated on nearest-neighbour distances: white, smooth and empirical
    noise (Chapter 6)."""
    def gaussian(train, samples, rng, context):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return calibrate(Gaussian, train, samples, grid=BASELINE_GRID * np.std(train),
                             rng=rng, n_perturb=500, refine=False).kernel

    def smooth(train, samples, rng, context):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return calibrate(lambda s: Smooth(s, ell=4.0), train, samples,
                             grid=BASELINE_GRID * np.std(train), rng=rng, n_perturb=500,
                             refine=False).kernel

    def empirical(train, samples, rng, context):
        return Empirical.from_samples(train, samples, rng=rng, max_samples=1000)

    nn_fit = {"calibrate": "W1 of NN distances", "grid_times_std": BASELINE_GRID.tolist(),
              "n_perturb": 500, "refine": False}
    return [KernelSpec("Gaussian (NN-dist)", gaussian, params={"family": "Gaussian", **nn_fit}),
            KernelSpec("Smooth ell=4 (NN-dist)", smooth,
                       params={"family": "Smooth", "ell": 4.0, **nn_fit}),
            KernelSpec("Empirical residuals", empirical,
                       params={"family": "Empirical", "max_samples": 1000})]


def _family_params(name) -> dict:
    factory, grid = FAMILIES[name]
    return {"family": factory.__name__,
            "grid": {k: [float(v) for v in vals] for k, vals in grid.items()},
            "identity": factory.IDENTITY, "fit": "calibrate, statistic=quantiles"}


def family_specs() -> list[KernelSpec]:
    """Every family of :data:`FAMILIES`, calibrated on the cell's samples by c-free statistics."""
    specs = []
    for name in FAMILIES:
        def build(train, samples, rng, context, name=name):
            return _fit_family(name, train, samples, rng, context).kernel
        specs.append(KernelSpec(f"{name} (stats)", build, params=_family_params(name),
                                description=FAMILIES[name][0].__doc__.splitlines()[0]))
    return specs


def before_training_specs(datas, tune_seed: int) -> list[KernelSpec]:
    """Each family with parameters calibrated on another task's tune-seed cell (Chapter 6).

    The kernel for a cell of task T and class M is the family fitted on the training data of T
    with the parameters calibrated on ``SOURCE_TASK[T]``'s tune-seed cell of class M; it never
    sees the samples of T.
    """
    by_key = {(d.cell.task, d.cell.model, d.cell.seed): d for d in datas}
    memo = {}

    def params_for(name, model, source):
        key = (name, model, source)
        if key not in memo:
            data = by_key.get((source, model, tune_seed))
            if data is None:
                raise ValueError(f"before-training mode needs the cell {source}/{model}/"
                                 f"s{tune_seed} in the panel")
            context = Context(model=model, residual=data.cell.make_task().c_free_residual(),
                              task=source, seed=tune_seed)
            memo[key] = _fit_family(name, data.train, data.samples, np.random.default_rng(99),
                                    context).params
        return memo[key]

    # The cells these kernels borrow from are part of their cache key: new source samples, new
    # scores.
    sources = {f"{d.cell.task}/{d.cell.model}": d.digest() for d in datas
               if d.cell.seed == tune_seed and d.cell.task in SOURCE_TASK.values()}
    specs = []
    for name in FAMILIES:
        def build(train, samples, rng, context, name=name):
            params = params_for(name, context.model, SOURCE_TASK[context.task])
            return FAMILIES[name][0](**params).fit(train)
        specs.append(KernelSpec(f"{name} (before training)", build, needs_samples=False,
                                before_training=True, params={
                                    **_family_params(name), "source_task": SOURCE_TASK,
                                    "tune_seed": tune_seed, "source_rng": 99,
                                    "source_cells": sources}))
    return specs


# Candidate shares of the budget for a cheap proxy, and the rows it gives.
PROXY_FRACTIONS = (0.0625, 0.125, 0.25)
PROXY_KINDS = {"samples": "Proxy samples (cheap proxy)",
               "residuals": "Proxy residuals (cheap proxy)"}


def _proxy_digest(proxies: dict) -> str:
    labelled = sorted(proxies.items(), key=lambda kv: kv[0].label)
    return array_digest(*[p.samples for _, p in labelled]) + str([c.label for c, _ in labelled])


def proxy_spec(kind: str, fraction: float, proxies: dict, name: str | None = None,
               mix=None) -> KernelSpec:
    """A kernel from each cell's cheap proxy (Chapter 6); ``proxies``: Cell -> ProxyData.

    ``samples``: the proxy's samples drawn in place of the training data (``q_hat`` = the proxy's
    own recovered histogram); ``residuals``: the proxy's residuals against its nearest training
    trajectory (:class:`~physmis_edu.kernels.Empirical`), added to the training data. The build
    finds the cell's proxy by the context's task, class and seed; it never sees the model's
    samples. ``mix`` (``samples`` only): the shrinkage weight ``lambda`` of
    :class:`~physmis_edu.kernels.ProxySamples`, one float or a dict model class -> float.
    """
    if kind not in PROXY_KINDS:
        raise ValueError(f"kind must be one of {sorted(PROXY_KINDS)}; got {kind!r}")
    if mix is not None and kind != "samples":
        raise ValueError(f"mix applies to kind 'samples' only; got kind {kind!r}")
    by_cell = {(c.task, c.model, c.seed): p for c, p in proxies.items()}

    def build(train, samples, rng, context):
        key = (context.task, context.model, context.seed)
        if key not in by_cell:
            raise ValueError(f"no proxy for {context.task}/{context.model}/s{context.seed}")
        proxy = by_cell[key].samples
        if kind == "samples":
            if mix is None:
                return ProxySamples(proxy)
            return ProxySamples(proxy, mix=mix[context.model] if isinstance(mix, dict) else mix)
        return Empirical.from_samples(train, proxy, rng=rng, max_samples=1000)

    family = {"samples": "ProxySamples", "residuals": "Empirical"}[kind]
    params = {"family": family, "proxy": kind, "fraction": float(fraction),
              "proxies": _proxy_digest(proxies),
              **({"max_samples": 1000} if kind == "residuals" else {}),
              **({} if mix is None else {"mix": mix})}
    return KernelSpec(name or f"{PROXY_KINDS[kind]} {fraction:g}", build, needs_samples=False,
                      params=params, cost_fraction=float(fraction),
                      description=f"cheap proxy ({fraction:g} of train_steps), {kind}")


# The shrinkage weights lambda tried on the tune seed (0: the prior; 1: the unshrunk proxy).
SHRINK_GRID = tuple(round(float(v), 2) for v in np.linspace(0.0, 1.0, 21))
SHRINK_NAMES = {"single": "Proxy shrunk (cheap proxy)",
                "per_model": "Proxy shrunk/model (cheap proxy)"}


def best_lambda(scores, grid, model=None) -> tuple[float, dict]:
    """The lambda with the best median explained fraction over ``scores`` of rows named
    ``shrunk {lambda}`` (of one model class if given); the first on ties."""
    medians = {}
    for m in grid:
        group = [s for s in scores if s.kernel == f"shrunk {m:g}"
                 and (model is None or s.model == model)]
        medians[m] = median(s.explained_fraction for s in group)
    return max(grid, key=lambda m: np.nan_to_num(medians[m], nan=-9)), medians


ROUTED = {"pearson": "routed per model (tuned on seed)",
          "inside_pearson": "routed by inside (tuned on seed)"}


def route_by_tune_seed(scores, tune_seed: int, families, key: str = "pearson",
                       name: str | None = None):
    """Per model class, the family with the best median ``key`` (a CellScore field) on the tune
    seed; its scores as a new row ``name`` (Chapter 6). Returns the rows and the choice."""
    name = ROUTED[key] if name is None else name
    chosen = {}
    for model in PANEL_MODELS:
        best = None
        for fam in families:
            vals = [getattr(s, key) for s in scores
                    if s.kernel == fam and s.model == model and s.seed == tune_seed]
            med = median(vals)
            if np.isfinite(med) and (best is None or med > best[1]):
                best = (fam, med)
        if best is not None:
            chosen[model] = best[0]
    routed = [CellScore(**{**s.__dict__, "kernel": name}) for s in scores
              if chosen.get(s.model) == s.kernel]
    return routed, chosen


def best_kernels(table) -> dict:
    """The best kernel row (references excluded) by median all-bins Pearson, inside-range Pearson
    and explained fraction."""
    kernels = [r for r in table if not is_reference(r["kernel"])]
    return {key: max(kernels, key=lambda r: np.nan_to_num(r[key], nan=-9))
            for key in ("pearson", "inside_pearson", "ef")}
