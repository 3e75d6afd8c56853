"""The kernel benchmark panel of Chapter 6: which data deviation kernel predicts a trained model's drift?

Trains (or loads from the cache) every cell task x model class x seed, scores every kernel
against the observed drift, prints the leaderboard and writes JSON.

    python benchmarks/kernel_panel.py [--profile ci|gpu] [--cache DIR] [--seeds 0 1 2]
                                      [--tune-seed 0] [--jobs 2] [--tasks ...] [--models ...]
                                      [--no-score-cache] [--proxy-fractions 0.0625 0.125 0.25] [--no-proxy]
                                      [--results physmis_edu/data/panel/kernel_panel_ci.json]

``--results`` also writes the small summary (metadata, leaderboard, best kernels) that Chapter 6
renders. The leaderboard shows the all-bins Pearson (overflow bins included) and the inside-range
Pearson (the ``B`` bins inside ``[lo, hi]`` only), which a kernel cannot win by pushing mass out of
range; ``PM id`` is the fraction of perfect-model calibrations that chose the identity, which every
calibration grid holds (zero strength).

Two caches under ``--cache``: the cells' arrays (training costs minutes) and every kernel score
(``{cache}/scores/``, one JSON file per cell and kernel; see :mod:`physmis_edu.panel` for its key,
which includes a hash of the scoring code and of this file, so an edit rescores). Both warm, the
panel runs in seconds; ``--no-score-cache`` rescores everything. A score depends on the cell's
position in the panel (its random stream), so a subset run (``--tasks``/``--models``) gets its
own scores, not those of the full panel.

Held-out protocol: design choices (grids, which family to route each model class to) and the
parameters of the *before-training* kernels are chosen on the cells of ``--tune-seed`` only;
the leaderboard reports the other seeds. A before-training kernel for task T takes the
parameters calibrated on seed ``--tune-seed`` of a *different* task (``SOURCE_TASK[T]``) for the
same model class and never looks at the model's samples on T.
Two routed rows: ``routed per model`` picks, per model class, the family (or baseline) with the
best median all-bins Pearson on the tune seed; ``routed by inside`` picks by the inside-range Pearson.

Proxy kernels (before training): for every cell, the same model class trained on the cell's training
trajectories for a share of its ``train_steps`` (:func:`physmis_edu.panel.load_or_train_proxy`,
seeded from its own stream, cached as ``{cache}/proxy_*.npz``). ``Proxy samples`` uses the proxy's
samples as ``q_hat`` (:class:`~physmis_edu.kernel_families.ProxySamples`); ``Proxy residuals`` adds
the proxy's nearest-neighbour residuals to the training data (:class:`Empirical`). Each kind's share is
chosen among ``--proxy-fractions`` by median Pearson on the tune-seed cells (one share for every task
and model class), then trained for every seed. No perfect-model control (``-``): the proxy is not
calibrated on samples, so feeding it true samples is not defined (see :mod:`physmis_edu.panel`).
The share chosen, the shares' scores on the tune seed and the proxies' cost are printed and written to
the JSON (``proxy``).

Shrunk proxy (before training): ``ProxySamples(samples, mix=lambda)`` replaces a share ``lambda`` of
the training rows by proxy samples, so ``q_hat ~ p + lambda (q_proxy - p)``. ``lambda`` is chosen among
``SHRINK_GRID`` (0, 0.05, ..., 1) by median explained fraction over the tune-seed cells, with the
proxies of the share already chosen: one ``lambda`` for every cell (``Proxy shrunk``) and one per model
class (``Proxy shrunk/model``); both rows are appended after the others, so no other row's random
stream moves. The chosen ``lambda`` values are printed and written to the JSON. No perfect-model control.

Two reference rows besides the kernels: ``ceiling (other seed)`` (another training run's histogram as
the prediction) and ``split half (same model)`` (the even-numbered samples predicting the odd-numbered
ones: finite-sample noise only). A second table, *class level*
(:func:`physmis_edu.panel.pooled_leaderboard`), averages each kernel's predicted and observed per-bin
shifts over the report seeds per (task, model class) before comparing, the target a kernel built from
the training data alone can hope to predict; its reference row is the tune seed's observed shift.

Applied tasks (the U-maze's travel distance, the double pendulum's energy) are not in the default
(timed) panel; run them apart, with the core panel's proxy share:

    python benchmarks/kernel_panel.py --tasks maze pendulum --cache benchmarks/out/panel_applied \\
        --proxy-fractions 0.25 --results physmis_edu/data/panel/kernel_panel_applied_ci.json

Measured (2 idle CPU cores, ``--jobs 2``, empty cache, 2026-11-21): the core panel (48 cells, 80
proxies, 816 scores) took 7 min 27 s and 7 min 42 s in two runs (cells about 4 min, proxies about 3
min, scoring 35 s) and reproduced every number; warm, seconds. The applied run (24 cells) is slower,
mostly the Transformer sampling the 6-channel pendulum token by token; see ``seconds`` in its JSON.

Writes ``{cache}/leaderboard.json`` (every cell score, the tables, timings).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone
from multiprocessing import Pool
from pathlib import Path

# Before numpy loads: one BLAS thread per process. The nearest-neighbour searches of calibration are
# small matrix products; on a shared 2-core machine a multi-threaded OpenBLAS made each ~20x slower
# (16 ms instead of 0.7 ms). The panel parallelises over processes (--jobs) instead.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from physmis_edu import panel  # noqa: E402
from physmis_edu.kernel_families import (Compounding, NeighbourBlend, ProxySamples, Quantise, Shrinkage,  # noqa: E402
                                         Truncation, fit_by_statistics, rule_residual)
from physmis_edu.kernels import Empirical, Gaussian, Smooth, calibrate  # noqa: E402

# The task whose tune-seed calibration a before-training kernel borrows (never the task itself).
SOURCE_TASK = {"toy": "sine", "sine": "logistic-chaotic", "logistic-periodic": "sine", "logistic-chaotic": "sine",
               "maze": "pendulum", "pendulum": "maze"}

FAMILIES = {
    "NeighbourBlend": (NeighbourBlend, {"k": [4, 16], "mix": [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], "sigma": [0.0, 0.02]}),
    "Truncation": (Truncation, {"k": [1, 2, 4, 6, 8, 12], "sigma": [0.0, 0.01, 0.05]}),
    "Shrinkage": (Shrinkage, {"tau": list(np.geomspace(1e-4, 1.0, 7)), "sigma": [0.0, 0.01, 0.05]}),
    "Quantise": (Quantise, {"bins": [16, 32, 64, 128], "jitter": [0.0, 0.5, 1.0]}),
    "Compounding": (Compounding, {"sigma": list(np.geomspace(1e-3, 0.3, 7)), "rho": [0.0, 0.7, 1.0]}),
}
# The baselines' scale grid (kernels.calibrate): zero (the identity, so that a perfect model's samples
# can choose "no perturbation") and 21 geometric points, no golden-section refinement, to keep the
# panel's kernel scoring to minutes. The families' grids get their identity from fit_by_statistics
# (each class's IDENTITY; NeighbourBlend's grid already holds mix = 0, sigma = 0).
BASELINE_GRID = np.concatenate([[0.0], np.geomspace(1e-3, 1.0, 21)])

def _fit_family(name, train, samples, rng, context):
    factory, grid = FAMILIES[name]
    return fit_by_statistics(factory, grid, train, samples, residual=context.residual, rng=rng)


def baseline_specs():
    def gaussian(train, samples, rng, context):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return calibrate(Gaussian, train, samples, grid=BASELINE_GRID * np.std(train), rng=rng, n_perturb=500, refine=False).kernel

    def smooth(train, samples, rng, context):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return calibrate(lambda s: Smooth(s, ell=4.0), train, samples, grid=BASELINE_GRID * np.std(train), rng=rng,
                             n_perturb=500, refine=False).kernel

    def empirical(train, samples, rng, context):
        return Empirical.from_samples(train, samples, rng=rng, max_samples=1000)

    nn_fit = {"calibrate": "W1 of NN distances", "grid_times_std": BASELINE_GRID.tolist(), "n_perturb": 500,
              "refine": False}
    return [panel.KernelSpec("Gaussian (NN-dist)", gaussian, params={"family": "Gaussian", **nn_fit}),
            panel.KernelSpec("Smooth ell=4 (NN-dist)", smooth, params={"family": "Smooth", "ell": 4.0, **nn_fit}),
            panel.KernelSpec("Empirical residuals", empirical, params={"family": "Empirical", "max_samples": 1000})]


def _family_params(name):
    factory, grid = FAMILIES[name]
    return {"family": factory.__name__, "grid": {k: [float(v) for v in vals] for k, vals in grid.items()},
            "identity": factory.IDENTITY, "fit": "fit_by_statistics"}


def family_specs():
    specs = []
    for name in FAMILIES:
        def build(train, samples, rng, context, name=name):
            return _fit_family(name, train, samples, rng, context).kernel
        specs.append(panel.KernelSpec(f"{name} (stats)", build, description=FAMILIES[name][0].__doc__.splitlines()[0],
                                      params=_family_params(name)))
    return specs


def before_training_specs(datas, tune_seed: int):
    """Kernels with parameters calibrated on another task's tune-seed cell; they ignore the samples."""
    by_key = {(d.cell.task, d.cell.model, d.cell.seed): d for d in datas}
    memo = {}

    def params_for(name, model, source):
        key = (name, model, source)
        if key not in memo:
            data = by_key.get((source, model, tune_seed))
            if data is None:
                raise ValueError(f"before-training mode needs the cell {source}/{model}/s{tune_seed} in the panel")
            context = panel.Context(model=model, residual=rule_residual(panel.make_task(source)), task=source)
            memo[key] = _fit_family(name, data.train, data.samples, np.random.default_rng(99), context).params
        return memo[key]

    # The cells these kernels borrow from are part of their cache key: new source samples, new scores.
    sources = {f"{d.cell.task}/{d.cell.model}": d.digest() for d in datas
               if d.cell.seed == tune_seed and d.cell.task in SOURCE_TASK.values()}
    specs = []
    for name in FAMILIES:
        def build(train, samples, rng, context, name=name):
            params = params_for(name, context.model, SOURCE_TASK[context.task])
            return FAMILIES[name][0](**params).fit(train)
        specs.append(panel.KernelSpec(f"{name} (before training)", build, needs_samples=False, params={
            **_family_params(name), "source_task": SOURCE_TASK, "tune_seed": tune_seed, "source_rng": 99,
            "source_cells": sources}))
    return specs


PROXY_FRACTIONS = (0.0625, 0.125, 0.25)
PROXY_KINDS = {"samples": "Proxy samples (before training)", "residuals": "Proxy residuals (before training)"}


def _proxy_digest(proxies: dict) -> str:
    import hashlib

    text = ";".join(f"{c.label}:{p.digest()}" for c, p in sorted(proxies.items(), key=lambda kv: kv[0].label))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def proxy_spec(kind: str, fraction: float, proxies: dict, datas, name: str | None = None, mix=None):
    """A before-training kernel from each cell's cheap proxy (``proxies``: Cell -> ProxyData at ``fraction``).

    ``samples``: the proxy's samples drawn in place of the training data (``q_hat`` = the proxy's own
    recovered histogram); ``residuals``: the proxy's residuals against its nearest training trajectory
    (:class:`Empirical`), added to the training data. The build finds the cell's proxy from the
    context's task and model class and the training set's bytes; it never sees the model's samples.
    ``mix`` (``samples`` only): the shrinkage weight ``lambda`` of :class:`ProxySamples`, one float
    or a dict model class -> float; ``None`` is the unshrunk kernel (``lambda = 1``).
    """
    if mix is not None and kind != "samples":
        raise ValueError(f"mix applies to kind 'samples' only; got kind {kind!r}")
    import hashlib

    def digest(train):
        return hashlib.sha1(np.ascontiguousarray(train).tobytes()).hexdigest()

    by_train = {(d.cell.task, d.cell.model, digest(d.train)): proxies[d.cell] for d in datas if d.cell in proxies}

    def build(train, samples, rng, context):
        key = (context.task, context.model, digest(train))
        if key not in by_train:
            raise ValueError(f"no proxy for {context.task}/{context.model} with this training set")
        proxy = by_train[key].samples
        if kind == "samples":
            if mix is None:
                return ProxySamples(proxy)
            return ProxySamples(proxy, mix=mix[context.model] if isinstance(mix, dict) else mix)
        return Empirical.from_samples(train, proxy, rng=rng, max_samples=1000)

    family = {"samples": "ProxySamples", "residuals": "Empirical"}[kind]
    params = {"family": family, "proxy": kind, "fraction": float(fraction), "proxies": _proxy_digest(proxies),
              **({"max_samples": 1000} if kind == "residuals" else {}), **({} if mix is None else {"mix": mix})}
    return panel.KernelSpec(name or f"{PROXY_KINDS[kind]} {fraction:g}", build, needs_samples=False, params=params,
                            description=f"cheap proxy ({fraction:g} of train_steps), {kind}")


def _train_proxy(job):
    cell, cache, fraction = job
    proxy = panel.load_or_train_proxy(cell, cache, fraction, device=None if cell.profile == "gpu" else "cpu", threads=1)
    return proxy.cell, proxy.seconds, proxy.cached


def train_proxies(cells, cache, fraction, jobs):
    """Every cell's proxy at ``fraction`` (missing ones trained in ``jobs`` processes); Cell -> ProxyData, seconds."""
    todo = [(c, cache, fraction) for c in cells if not panel.proxy_path(c, cache, fraction).exists()]
    if jobs > 1 and len(todo) > 1:
        with Pool(jobs) as pool:
            trained = pool.map(_train_proxy, todo, chunksize=1)
    else:
        trained = [_train_proxy(j) for j in todo]
    proxies = {c: panel.load_or_train_proxy(c, cache, fraction) for c in cells}
    return proxies, sum(s for _, s, cached in trained if not cached), len(trained)


def build_proxy_specs(cells, datas, args):
    """Train (or load) the proxies and return the two proxy kernel specs and a summary for the JSON.

    With several candidate shares, every share is trained for the tune-seed cells only and each
    proxy kind keeps the share with the best median Pearson over those cells (one share for all
    tasks and model classes: a design choice, like the grids); then the chosen share is trained for
    every cell. The reported seeds never influence the choice.
    """
    start = time.perf_counter()
    fractions = sorted({float(f) for f in args.proxy_fractions})
    for f in fractions:
        panel._check_fraction(f)
    tune_cells = [c for c in cells if c.seed == args.tune_seed]
    train_seconds, trained_now, tuning = 0.0, 0, {}
    chosen = {kind: fractions[0] for kind in PROXY_KINDS}
    if len(fractions) > 1 and tune_cells:
        tune_datas = [d for d in datas if d.cell.seed == args.tune_seed]
        tune_specs = []
        for f in fractions:
            proxies, seconds, n = train_proxies(tune_cells, args.cache, f, args.jobs)
            train_seconds, trained_now = train_seconds + seconds, trained_now + n
            tune_specs += [proxy_spec(kind, f, proxies, tune_datas) for kind in PROXY_KINDS]
        tune_scores = panel.evaluate_panel(tune_datas, tune_specs, bins=args.bins, rng=0, residual_for=rule_residual,
                                           score_cache=None if args.no_score_cache else args.cache)
        for kind, label in PROXY_KINDS.items():
            tuning[kind] = {}
            for f in fractions:
                group = [s for s in tune_scores if s.kernel == f"{label} {f:g}"]
                tuning[kind][f"{f:g}"] = {"pearson": panel._median(s.pearson for s in group),
                                          "inside_pearson": panel._median(s.inside_pearson for s in group),
                                          "ef": panel._median(s.explained_fraction for s in group)}
            chosen[kind] = max(fractions, key=lambda f: np.nan_to_num(tuning[kind][f"{f:g}"]["pearson"], nan=-9))
        print(f"proxy shares on tune seed {args.tune_seed} (median Pearson / inside / EF):")
        for kind, row in tuning.items():
            print(f"  {kind:9s} " + "  ".join(f"{f}: {v['pearson']:.2f}/{v['inside_pearson']:.2f}/{v['ef']:.2f}"
                                               for f, v in row.items()))
    specs, shrink_meta = [], None
    for kind, label in PROXY_KINDS.items():
        proxies, seconds, n = train_proxies(cells, args.cache, chosen[kind], args.jobs)
        train_seconds, trained_now = train_seconds + seconds, trained_now + n
        specs.append(proxy_spec(kind, chosen[kind], proxies, datas, name=label))
        if kind == "samples" and args.tune_seed in args.seeds:
            shrunk_specs, shrink_meta = build_shrunk_proxy_specs(proxies, chosen[kind], datas, args)
    # Appended after the unshrunk rows: a spec's random stream follows its index, so earlier rows keep their numbers.
    specs += shrunk_specs if shrink_meta is not None else []
    meta = {"fractions": fractions, "chosen": chosen, "tuning_on_tune_seed": tuning, "seed": "default_rng([seed, 8])",
            "sample_stream": "[seed, 7, 1]", "n_samples": "n_train", "seconds": time.perf_counter() - start,
            "train_seconds": train_seconds, "trained_now": trained_now, "shrink": shrink_meta}
    return specs, meta


# The shrinkage weights lambda tried on the tune seed (lambda = 0: the prior; 1: the unshrunk proxy).
SHRINK_GRID = tuple(round(float(v), 2) for v in np.linspace(0.0, 1.0, 21))
SHRINK_NAMES = {"single": "Proxy shrunk (before training)", "per_model": "Proxy shrunk/model (before training)"}


def _best_lambda(scores, grid, model=None) -> tuple[float, dict]:
    """The lambda with the best median EF over ``scores`` (of one model class if given); first on ties."""
    medians = {}
    for m in grid:
        group = [s for s in scores if s.kernel == f"shrunk {m:g}" and (model is None or s.model == model)]
        medians[m] = panel._median(s.explained_fraction for s in group)
    return max(grid, key=lambda m: np.nan_to_num(medians[m], nan=-9)), medians


def build_shrunk_proxy_specs(proxies: dict, fraction: float, datas, args):
    """The shrunk proxy kernels: ``q_hat = p + lambda * (q_proxy - p)`` with ``lambda`` chosen on the tune seed.

    Every lambda of :data:`SHRINK_GRID` is scored on the tune-seed cells only (the proxies of the
    already chosen share ``fraction``), and ``lambda`` maximises the median explained fraction: one
    for every cell (``single``) and one per model class (``per_model``, each over that class's
    tune-seed cells). The reported seeds never influence the choice. Returns the two specs and a
    summary for the JSON.
    """
    start = time.perf_counter()
    tune_datas = [d for d in datas if d.cell.seed == args.tune_seed]
    tune_proxies = {c: p for c, p in proxies.items() if c.seed == args.tune_seed}
    tune_specs = [proxy_spec("samples", fraction, tune_proxies, tune_datas, name=f"shrunk {m:g}", mix=m)
                  for m in SHRINK_GRID]
    scores = panel.evaluate_panel(tune_datas, tune_specs, bins=args.bins, rng=0, residual_for=rule_residual,
                                  score_cache=None if args.no_score_cache else args.cache)
    single, ef_single = _best_lambda(scores, SHRINK_GRID)
    per_model, ef_per_model = {}, {}
    for model in sorted({d.cell.model for d in tune_datas}):
        per_model[model], ef_per_model[model] = _best_lambda(scores, SHRINK_GRID, model)
    tuning = {f"{m:g}": {"ef": ef_single[m],
                         "pearson": panel._median(s.pearson for s in scores if s.kernel == f"shrunk {m:g}"),
                         "inside_pearson": panel._median(s.inside_pearson for s in scores if s.kernel == f"shrunk {m:g}"),
                         **{f"ef_{model}": ef_per_model[model][m] for model in per_model}} for m in SHRINK_GRID}
    print(f"proxy shrinkage lambda on tune seed {args.tune_seed} (median EF): "
          + " ".join(f"{m:g}:{ef_single[m]:.2f}" for m in SHRINK_GRID))
    print(f"  chosen: one lambda {single:g}; per model class {per_model}")
    specs = [proxy_spec("samples", fraction, proxies, datas, name=SHRINK_NAMES["single"], mix=single),
             proxy_spec("samples", fraction, proxies, datas, name=SHRINK_NAMES["per_model"], mix=dict(per_model))]
    meta = {"grid": list(SHRINK_GRID), "fraction": fraction, "criterion": "median explained fraction on the tune seed",
            "chosen": single, "chosen_per_model": per_model, "tuning_on_tune_seed": tuning,
            "rows": SHRINK_NAMES, "seconds": time.perf_counter() - start}
    return specs, meta


def _train_one(cell_and_cache):
    cell, cache = cell_and_cache
    data = panel.load_or_train(cell, cache, device=None if cell.profile == "gpu" else "cpu", threads=1)
    return data.cell, data.seconds, data.cached


_STATE = {}


def _score_cells(indices):
    # Runs in a forked worker: the specs (closures) and arrays are inherited, not pickled.
    return panel.evaluate_panel(_STATE["datas"], _STATE["specs"], bins=_STATE["bins"], rng=0,
                                residual_for=rule_residual, only=set(indices), score_cache=_STATE["score_cache"])


def route_by_tune_seed(scores, tune_seed: int, families, key: str = "pearson",
                       name: str = "routed per model (tuned on seed)"):
    """Per model class, the family with the best median ``key`` (a CellScore field) on the tune seed; its scores as a new row ``name``."""
    chosen = {}
    for model in panel.PANEL_MODELS:
        best = None
        for fam in families:
            vals = [getattr(s, key) for s in scores if s.kernel == fam and s.model == model and s.seed == tune_seed]
            med = panel._median(vals)
            if np.isfinite(med) and (best is None or med > best[1]):
                best = (fam, med)
        if best is not None:
            chosen[model] = best[0]
    routed = []
    for s in scores:
        if chosen.get(s.model) == s.kernel:
            r = panel.CellScore(**{**s.__dict__, "kernel": name})
            routed.append(r)
    return routed, chosen


def best_kernels(table):
    """The best kernel (the reference rows excluded) by median all-bins Pearson, inside-range Pearson and EF."""
    kernels = [r for r in table if not panel.is_reference(r["kernel"])]
    return {key: max(kernels, key=lambda r: np.nan_to_num(r[key], nan=-9)) for key in ("pearson", "inside_pearson", "ef")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="ci", choices=sorted(panel.PANEL_SIZES))
    ap.add_argument("--cache", default="benchmarks/out/panel")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--tune-seed", type=int, default=0)
    ap.add_argument("--tasks", nargs="+", default=None)
    ap.add_argument("--models", nargs="+", default=list(panel.PANEL_MODELS), choices=panel.PANEL_MODELS)
    ap.add_argument("--jobs", type=int, default=2, help="training processes (1 torch thread each)")
    ap.add_argument("--bins", type=int, default=20)
    ap.add_argument("--no-score-cache", action="store_true",
                    help="rescore every kernel; neither read nor write {cache}/scores")
    ap.add_argument("--proxy-fractions", type=float, nargs="+", default=list(PROXY_FRACTIONS),
                    help="candidate shares of train_steps for the cheap proxy models; with more than one, each "
                    "proxy kernel's share is chosen on the tune seed (median Pearson) and trained for every seed")
    ap.add_argument("--no-proxy", action="store_true", help="skip the proxy-model kernels")
    ap.add_argument("--out", default=None, help="JSON path (default {cache}/leaderboard.json)")
    ap.add_argument("--results", default=None, help="also write a small JSON (metadata + leaderboard only) here, "
                    "e.g. physmis_edu/data/panel/kernel_panel_ci.json for the book")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    cells = panel.panel_cells(args.tasks, models=args.models, seeds=args.seeds, profile=args.profile)
    slow_first = {"DiffusionUNet": 0, "Transformer": 1, "VAE": 2, "DiffusionMLP": 3}
    cells.sort(key=lambda c: (slow_first[c.model], c.seed, c.task))
    # Only cells missing from the cache go to the training pool; the rest are loaded once, below.
    jobs = [(c, args.cache) for c in cells if not panel.cache_path(c, args.cache).exists()]
    if args.jobs > 1 and len(jobs) > 1:
        with Pool(args.jobs) as pool:
            trained = pool.map(_train_one, jobs, chunksize=1)
    else:
        trained = [_train_one(j) for j in jobs]
    datas = [panel.load_or_train(c, args.cache) for c in cells]  # all from the cache now
    t_train = time.perf_counter() - t0
    n_new = sum(not cached for _, _, cached in trained)
    print(f"{len(cells)} cells ready in {t_train:.1f} s ({n_new} trained now, "
          f"{sum(s for _, s, c in trained if not c):.0f} s of training+sampling)", flush=True)

    proxy_specs, proxy_meta, t_proxy = [], None, 0.0
    if not args.no_proxy:
        proxy_specs, proxy_meta = build_proxy_specs(cells, datas, args)
        t_proxy = proxy_meta["seconds"]
        print(f"proxies ready in {t_proxy:.1f} s ({proxy_meta['trained_now']} trained now, "
              f"{proxy_meta['train_seconds']:.0f} s of training+sampling); share of train_steps chosen on seed "
              f"{args.tune_seed}: {proxy_meta['chosen']}", flush=True)

    fam_specs = family_specs()
    specs = baseline_specs() + fam_specs
    tasks = {c.task for c in cells}
    if args.tune_seed in args.seeds and all(SOURCE_TASK[t] in tasks for t in tasks):
        specs += before_training_specs(datas, args.tune_seed)
    else:
        print("before-training kernels skipped: they need the tune seed and each task's source task in the panel")
    specs += proxy_specs
    t1 = time.perf_counter()
    score_dir = Path(args.cache) / "scores"
    n_files_before = sum(1 for _ in score_dir.rglob("*.json")) if score_dir.exists() else 0
    _STATE.update(datas=datas, specs=specs, bins=args.bins, score_cache=None if args.no_score_cache else args.cache)
    chunks = [list(range(i, len(datas), max(1, args.jobs) * 4)) for i in range(max(1, args.jobs) * 4)]
    if args.jobs > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            scores = [s for part in pool.map(_score_cells, chunks, chunksize=1) for s in part]
    else:
        scores = _score_cells(range(len(datas)))
    n_kernel_scores = len(scores) - sum(panel.is_reference(s.kernel) for s in scores)
    n_computed = n_kernel_scores
    if not args.no_score_cache:
        n_computed = (sum(1 for _ in score_dir.rglob("*.json")) if score_dir.exists() else 0) - n_files_before
    routed, chosen = route_by_tune_seed(scores, args.tune_seed, [s.name for s in fam_specs + baseline_specs()])
    scores += routed
    routed_inside, chosen_inside = route_by_tune_seed(scores, args.tune_seed, [s.name for s in fam_specs + baseline_specs()],
                                                      key="inside_pearson", name="routed by inside (tuned on seed)")
    scores += routed_inside
    t_eval = time.perf_counter() - t1

    report_seeds = [s for s in args.seeds if s != args.tune_seed] or args.seeds
    table = panel.leaderboard(scores, seeds=report_seeds)
    print(f"\nLeaderboard ({args.profile} profile; reported on seeds {report_seeds}, tuned on seed {args.tune_seed}; "
          f"medians over cells; Pearson/Spearman of per-bin shifts, EF = explained fraction, "
          f"sign = mean shift sign right, PM ok = perfect-model control passed; last columns: median Pearson per model)")
    print(panel.format_leaderboard(table))
    print(f"\nrouted per model class (chosen on seed {args.tune_seed}): {chosen}")
    print(f"routed by inside-range Pearson (chosen on seed {args.tune_seed}): {chosen_inside}")
    best = best_kernels(table)
    for key, row in best.items():
        print(f"best kernel by median {key}: {row['kernel']} ({key} {row[key]:.2f}, all-bins Pearson "
              f"{row['pearson']:.2f}, inside Pearson {row['inside_pearson']:.2f}, EF {row['ef']:.2f})")
    tasks_seen = sorted(k[len("inside_"):] for k in table[0] if k.startswith("inside_") and k != "inside_pearson"
                        and k[len("inside_"):] not in panel.PANEL_MODELS)
    print("median inside-range Pearson per task (best kernel | ceiling):")
    ceiling = next((r for r in table if r["kernel"] == panel.CEILING), None)
    for task in tasks_seen:
        kernels = [r for r in table if not panel.is_reference(r["kernel"])]
        top = max(kernels, key=lambda r: np.nan_to_num(r[f"inside_{task}"], nan=-9))
        print(f"  {task:18s} {top['kernel']:34s} {top[f'inside_{task}']:5.2f} (all bins {top[f'pearson_{task}']:5.2f}) | "
              f"ceiling {ceiling[f'inside_{task}'] if ceiling else float('nan'):5.2f}")
    pooled = panel.pooled_leaderboard(scores, seeds=report_seeds, reference_seed=args.tune_seed) \
        if args.tune_seed not in report_seeds else []
    if pooled:
        print(f"\nClass level (per task and model class, shifts averaged over seeds {report_seeds} before comparing; "
              f"'{panel.POOLED_CEILING}' = seed {args.tune_seed}'s observed shift as the prediction; medians over groups)")
        print(panel.format_pooled(pooled))
    total = time.perf_counter() - t0
    print(f"time: cells {t_train:.1f} s, proxies {t_proxy:.1f} s, kernels {t_eval:.1f} s ({n_computed} of {n_kernel_scores} scores computed, "
          f"the rest read from the score cache), total {total:.1f} s")

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    out = Path(args.out) if args.out else Path(args.cache) / "leaderboard.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "profile": args.profile,
        "seeds": args.seeds, "tune_seed": args.tune_seed, "report_seeds": report_seeds, "git_commit": commit,
        "bins": args.bins, "sizes": panel.PANEL_SIZES[args.profile], "budgets": panel.PANEL_BUDGETS[args.profile],
        "source_task_for_before_training": SOURCE_TASK, "routed": chosen, "routed_inside": chosen_inside,
        "proxy": proxy_meta,
        "seconds": {"cells": t_train, "kernels": t_eval, "total": total, "trained_now": n_new,
                    "scores_computed": n_computed, "scores_cached": n_kernel_scores - n_computed,
                    "proxies": t_proxy, "proxies_trained_now": 0 if proxy_meta is None else proxy_meta["trained_now"],
                    "proxy_train_seconds": 0.0 if proxy_meta is None else proxy_meta["train_seconds"]},
        "leaderboard": table, "table_text": panel.format_leaderboard(table),
        "best": {key: row["kernel"] for key, row in best.items()},
        "pooled": pooled, "pooled_text": panel.format_pooled(pooled) if pooled else "",
    }
    panel.atomic_write_text(out, json.dumps({**meta, "cells": [s.as_dict() for s in scores]}, indent=1,
                                            default=float))
    print(f"wrote {out}")
    if args.results:
        panel.atomic_write_text(args.results, json.dumps(meta, indent=1, default=float))
        print(f"wrote {args.results}")
    return table


if __name__ == "__main__":
    main()
