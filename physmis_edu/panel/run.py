"""One run of the kernel panel, from cells to leaderboards (Chapter 6).

:func:`run_panel` trains (or loads) every cell and its cheap proxies, scores every kernel against
the observed drift, routes, and returns the leaderboards and metadata as one JSON-able dict. The
command line is ``benchmarks/kernel_panel.py``.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import time
from datetime import datetime, timezone

import numpy as np

from .design import PANEL_BUDGETS, PANEL_MODELS, Cell
from .score import evaluate_panel, is_reference
from .specs import (PROXY_KINDS, SHRINK_GRID, SHRINK_NAMES, SOURCE_TASK, baseline_specs,
                    before_training_specs, best_kernels, best_lambda, family_specs, proxy_spec,
                    route_by_tune_seed)
from .tables import format_leaderboard, leaderboard, median, pooled_leaderboard
from .train import (cache_path, cell_sizes, check_fraction, load_or_train, load_or_train_proxy,
                    proxy_path)

__all__ = ["run_panel", "train_cells", "train_proxies", "model_facts"]

# The order of cells within a panel run (each cell's scoring stream follows its position).
_CELL_ORDER = {"DiffusionUNet": 0, "Transformer": 1, "VAE": 2, "DiffusionMLP": 3}



def _device(cell: Cell):
    return None if cell.profile == "gpu" else "cpu"


def _train_one(job):
    cell, cache = job
    data = load_or_train(cell, cache, device=_device(cell), threads=1)
    return data.cell, data.seconds, data.cached


def _pool_map(fn, jobs, n_jobs: int):
    if n_jobs > 1 and len(jobs) > 1:
        with multiprocessing.get_context("fork").Pool(n_jobs) as pool:
            return pool.map(fn, jobs, chunksize=1)
    return [fn(j) for j in jobs]


def train_cells(cells, cache, jobs: int = 2):
    """Every cell's arrays (missing ones trained in ``jobs`` processes): the CellData list, the
    number trained now and their seconds of training and sampling."""
    # The panel's order of cells fixes each cell's random stream in scoring.
    cells = sorted(cells, key=lambda c: (_CELL_ORDER[c.model], c.seed, c.task))
    cost = {m: f["relative_cost"] for m, f in model_facts().items()}
    # Slow classes train first, so that the workers finish together.
    todo = [(c, cache) for c in sorted(cells, key=lambda c: -cost[c.model])
            if c.profile != "book" and not (cache is not None and cache_path(c, cache).exists())]
    trained = _pool_map(_train_one, todo, jobs)
    datas = [load_or_train(c, cache) for c in cells]
    return datas, len(trained), sum(s for _, s, cached in trained if not cached)


def _train_proxy(job):
    cell, cache, fraction, train = job
    proxy = load_or_train_proxy(cell, cache, fraction, device=_device(cell), threads=1,
                                train=train)
    return proxy.cell, proxy.seconds, proxy.cached


def train_proxies(datas, cache, fraction: float, jobs: int = 2):
    """Every cell's proxy at ``fraction`` (missing ones trained in ``jobs`` processes):
    Cell -> ProxyData, seconds of training, number trained now."""
    todo = [(d.cell, cache, fraction, d.train) for d in datas
            if not proxy_path(d.cell, cache, fraction, d.train).exists()]
    trained = _pool_map(_train_proxy, todo, jobs)
    proxies = {d.cell: load_or_train_proxy(d.cell, cache, fraction, train=d.train)
               for d in datas}
    return proxies, sum(s for _, s, cached in trained if not cached), len(trained)


def _score(datas, specs, bins, score_cache, jobs):
    """Every spec on every cell, split over ``jobs`` forked workers (the specs are closures:
    inherited by the workers, not pickled)."""
    global _STATE
    _STATE = dict(datas=datas, specs=specs, bins=bins, score_cache=score_cache)
    parts = max(1, jobs) * 4
    chunks = [list(range(i, len(datas), parts)) for i in range(parts)]
    if jobs > 1:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            return [s for part in pool.map(_score_chunk, chunks, chunksize=1) for s in part]
    return _score_chunk(range(len(datas)))


_STATE: dict = {}


def _score_chunk(indices):
    return evaluate_panel(_STATE["datas"], _STATE["specs"], bins=_STATE["bins"], rng=0,
                          only=set(indices), score_cache=_STATE["score_cache"])


def _proxy_specs(datas, cache, fractions, tune_seed, bins, score_cache, jobs, log):
    """The cheap-proxy specs: each kind's share of the budget chosen on the tune seed (median
    Pearson), then the shrunk proxy's weight (median explained fraction). Returns the specs and
    a summary for the results."""
    start = time.perf_counter()
    fractions = sorted({check_fraction(f) for f in fractions})
    tune = [d for d in datas if d.cell.seed == tune_seed]
    seconds, trained_now, tuning = 0.0, 0, {}
    chosen = {kind: fractions[0] for kind in PROXY_KINDS}
    if len(fractions) > 1 and tune:
        tune_specs = []
        for f in fractions:
            proxies, s, n = train_proxies(tune, cache, f, jobs)
            seconds, trained_now = seconds + s, trained_now + n
            tune_specs += [proxy_spec(kind, f, proxies) for kind in PROXY_KINDS]
        tune_scores = evaluate_panel(tune, tune_specs, bins=bins, rng=0, score_cache=score_cache)
        for kind, label in PROXY_KINDS.items():
            tuning[kind] = {}
            for f in fractions:
                group = [s for s in tune_scores if s.kernel == f"{label} {f:g}"]
                tuning[kind][f"{f:g}"] = {
                    "pearson": median(s.pearson for s in group),
                    "inside_pearson": median(s.inside_pearson for s in group),
                    "ef": median(s.explained_fraction for s in group)}
            chosen[kind] = max(fractions, key=lambda f: np.nan_to_num(
                tuning[kind][f"{f:g}"]["pearson"], nan=-9))
        log(f"proxy shares on tune seed {tune_seed} (median Pearson / inside / EF): {tuning}")
    specs, shrink, shrink_specs, proxy_cost = [], None, [], {}
    for kind, label in PROXY_KINDS.items():
        proxies, s, n = train_proxies(datas, cache, chosen[kind], jobs)
        seconds, trained_now = seconds + s, trained_now + n
        specs.append(proxy_spec(kind, chosen[kind], proxies, name=label))
        proxy_cost[kind] = _measured_cost(datas, proxies)
        if kind == "samples" and tune:
            shrink_specs, shrink = _shrunk_specs(proxies, chosen[kind], datas, tune_seed, bins,
                                                 score_cache, log)
    # Appended after the unshrunk rows: a spec's random stream follows its index, so earlier
    # rows keep their numbers.
    specs += shrink_specs
    meta = {"fractions": fractions, "chosen": chosen, "tuning_on_tune_seed": tuning,
            "seed": "default_rng([seed, 8])", "sample_stream": "[seed, 7, 1]",
            "n_samples": "n_train", "seconds": time.perf_counter() - start,
            "train_seconds": seconds, "trained_now": trained_now, "shrink": shrink,
            "measured_cost": proxy_cost}
    return specs, meta


def _measured_cost(datas, proxies) -> dict | None:
    """Median over cells of a proxy's seconds over its expensive model's seconds, per class."""
    ratios: dict = {}
    for d in datas:
        p = proxies.get(d.cell)
        if p is not None and p.seconds > 0 and d.seconds > 0:
            ratios.setdefault(d.cell.model, []).append(p.seconds / d.seconds)
    return {m: float(np.median(v)) for m, v in ratios.items()} or None


def _shrunk_specs(proxies, fraction, datas, tune_seed, bins, score_cache, log):
    """The shrunk proxy kernels: ``q_hat = p + lambda (q_proxy - p)`` with ``lambda`` chosen on
    the tune seed by median explained fraction, one for every cell and one per model class."""
    start = time.perf_counter()
    tune = [d for d in datas if d.cell.seed == tune_seed]
    tune_proxies = {c: p for c, p in proxies.items() if c.seed == tune_seed}
    tune_specs = [proxy_spec("samples", fraction, tune_proxies, name=f"shrunk {m:g}", mix=m)
                  for m in SHRINK_GRID]
    scores = evaluate_panel(tune, tune_specs, bins=bins, rng=0, score_cache=score_cache)
    single, ef_single = best_lambda(scores, SHRINK_GRID)
    per_model, ef_per_model = {}, {}
    for model in sorted({d.cell.model for d in tune}):
        per_model[model], ef_per_model[model] = best_lambda(scores, SHRINK_GRID, model)
    tuning = {}
    for m in SHRINK_GRID:
        rows = [s for s in scores if s.kernel == f"shrunk {m:g}"]
        tuning[f"{m:g}"] = {"ef": ef_single[m], "pearson": median(s.pearson for s in rows),
                            "inside_pearson": median(s.inside_pearson for s in rows),
                            **{f"ef_{model}": ef_per_model[model][m] for model in per_model}}
    log(f"proxy shrinkage: one lambda {single:g}; per model class {per_model}")
    specs = [proxy_spec("samples", fraction, proxies, name=SHRINK_NAMES["single"], mix=single),
             proxy_spec("samples", fraction, proxies, name=SHRINK_NAMES["per_model"],
                        mix=dict(per_model))]
    meta = {"grid": list(SHRINK_GRID), "fraction": fraction,
            "criterion": "median explained fraction on the tune seed", "chosen": single,
            "chosen_per_model": per_model, "tuning_on_tune_seed": tuning, "rows": SHRINK_NAMES,
            "seconds": time.perf_counter() - start}
    return specs, meta


def model_facts(models=PANEL_MODELS) -> dict:
    """Short name and relative cost of each model class, as the classes declare them."""
    from ..models import MODELS

    return {m: {"short": MODELS[m].short_name, "relative_cost": MODELS[m].relative_cost}
            for m in models}


def run_panel(cells, cache=None, tune_seed: int = 0, jobs: int = 2, bins: int = 20,
              proxy_fractions=(0.0625, 0.125, 0.25), proxies: bool = True,
              score_cache: bool = True, kernels=None, log=print) -> dict:
    """Run the panel on ``cells`` and return its results as a JSON-able dict (Chapter 6).

    ``cache``: a folder for trained cells, proxies and scores (required unless every cell is of
    the ``book`` profile and ``proxies`` is off). The dict holds the metadata, the per-cell
    leaderboard of the seeds other than ``tune_seed``, the class-level table, the routing and
    proxy choices, timings and every cell's score. ``kernels``: names of the kernel specs to
    score (default: all of them).
    """
    cells = list(cells)
    if not cells:
        raise ValueError("cells must hold at least one Cell; got none")
    if cache is None and (proxies or any(c.profile != "book" for c in cells)):
        raise ValueError("cache must be a folder: cells of a training profile and cheap proxies "
                         "are trained and cached there")
    profiles = sorted({c.profile for c in cells})
    if len(profiles) != 1:
        raise ValueError(f"cells must share one profile; got {profiles}")
    t0 = time.perf_counter()
    datas, n_new, train_seconds = train_cells(cells, cache, jobs)
    t_train = time.perf_counter() - t0
    log(f"{len(cells)} cells ready in {t_train:.1f} s ({n_new} trained now)")
    score_dir = None if not score_cache else cache
    proxy_specs, proxy_meta = [], None
    if proxies:
        proxy_specs, proxy_meta = _proxy_specs(datas, cache, proxy_fractions, tune_seed, bins,
                                               score_dir, jobs, log)
        log(f"proxies ready in {proxy_meta['seconds']:.1f} s; share chosen on seed {tune_seed}: "
            f"{proxy_meta['chosen']}")
    fam_specs, base_specs = family_specs(), baseline_specs()
    specs = base_specs + fam_specs
    tasks = {c.task for c in cells}
    seeds = sorted({c.seed for c in cells})
    if tune_seed in seeds and all(SOURCE_TASK[t] in tasks for t in tasks):
        specs += before_training_specs(datas, tune_seed)
    else:
        log("before-training kernels skipped: they need the tune seed and each task's source "
            "task in the panel")
    specs += proxy_specs
    if kernels is not None:
        unknown = sorted(set(kernels) - {s.name for s in specs})
        if unknown:
            raise ValueError(f"kernels must name specs of this panel, {[s.name for s in specs]}; "
                             f"unknown: {unknown}")
        specs = [s for s in specs if s.name in kernels]
    t1 = time.perf_counter()
    scores = _score(datas, specs, bins, score_dir, jobs)
    families = [s.name for s in fam_specs + base_specs if s in specs]
    routed, chosen = route_by_tune_seed(scores, tune_seed, families)
    scores += routed
    routed_inside, chosen_inside = route_by_tune_seed(scores, tune_seed, families,
                                                      key="inside_pearson")
    scores += routed_inside
    t_eval = time.perf_counter() - t1
    report_seeds = [s for s in seeds if s != tune_seed] or seeds
    table = leaderboard(scores, seeds=report_seeds, specs=specs)
    pooled = (pooled_leaderboard(scores, report_seeds, tune_seed, specs=specs)
              if tune_seed not in report_seeds else [])
    facts = model_facts(sorted({c.model for c in cells}, key=PANEL_MODELS.index))
    shorts = {m: f["short"] for m, f in facts.items()}
    log(format_leaderboard(table, shorts))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
    except OSError:
        commit = ""
    profile = profiles[0]
    sizes = {c.label: cell_sizes(c) for c in cells}
    n_kernel_scores = sum(not is_reference(s.kernel) for s in scores)
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "profile": profile,
        "seeds": seeds, "tune_seed": tune_seed, "report_seeds": report_seeds,
        "git_commit": commit, "bins": bins,
        "tasks": {t: repr(next(c for c in cells if c.task == t).make_task())
                  for t in sorted(tasks)},
        "models": facts, "sizes": next(iter(sizes.values())),
        "budgets": PANEL_BUDGETS.get(profile, {}),
        "source_task_for_before_training": SOURCE_TASK, "routed": chosen,
        "routed_inside": chosen_inside, "proxy": proxy_meta,
        "seconds": {"cells": t_train, "trained_now": n_new, "train_seconds": train_seconds,
                    "proxies": 0.0 if proxy_meta is None else proxy_meta["seconds"],
                    "kernels": t_eval, "kernel_scores": n_kernel_scores,
                    "total": time.perf_counter() - t0},
        "leaderboard": table, "best": {k: r["kernel"] for k, r in best_kernels(table).items()},
        "pooled": pooled, "cells": [s.as_dict() for s in scores],
    }
