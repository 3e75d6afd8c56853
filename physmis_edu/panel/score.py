"""Scoring kernels against a cell's observed drift, with the panel's two controls (Chapter 6).

Per kernel and cell: Pearson and Spearman of the predicted versus observed per-bin shifts,
explained fraction, sign of the mean shift, observed and predicted out-of-range mass, and the
*inside-range* Pearson over the ``B`` bins inside ``[lo, hi]`` only (all from
:func:`physmis_edu.kernels.agreement`). Two references frame them: the *seed-to-seed ceiling*
(another seed's histogram as the prediction) and the *split half* (half of the model's samples
predicting the other half). The *perfect-model control* feeds fresh true samples in as the
"model": a kernel calibrated on them must predict no drift beyond the finite-sample null.

Kernels enter through :class:`KernelSpec`, whose ``build(train, samples, rng, context)`` sees
trajectories only, never the control ``c`` (nor the task's recovery).

Scores are cached (:func:`evaluate_panel` with ``score_cache``), one small JSON file per (cell,
kernel spec). The key (:func:`score_key`) holds everything a score depends on, including a hash
of the source code that computes scores; a spec without ``params`` is never cached.
"""

from __future__ import annotations

import inspect
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .._validation import as_rng
from .design import Cell
from .store import config_hash, save_text, score_code_hash
from .train import PANEL_VERSION, CellData, cell_config

__all__ = ["Context", "KernelSpec", "CellScore", "CEILING", "SPLIT_HALF", "is_reference",
           "score_kernel", "seed_ceiling", "split_half", "perfect_model_control", "score_key",
           "evaluate_panel"]

CEILING = "ceiling (other seed)"
SPLIT_HALF = "split half (same model)"


def is_reference(name: str) -> bool:
    """Whether a score row is a reference (a ceiling or the split half) rather than a kernel."""
    return name.startswith("ceiling") or name == SPLIT_HALF


@dataclass(frozen=True)
class Context:
    """What a kernel's calibration may know besides trajectories (Chapter 6).

    ``model``: the model class name (known before training); ``residual``: the task's c-free
    residual ``x -> (n,)`` (``Task.c_free_residual``) or ``None``; ``task`` and ``seed``: the
    cell's task key and seed (to find parameters calibrated on *another* task, or the cell's own
    cheap proxy). Neither the control ``c`` nor the task's recovery is reachable from here.
    """

    model: str
    residual: Callable | None = None
    task: str = ""
    seed: int = 0


@dataclass
class KernelSpec:
    """A named way to build a kernel for a cell (Chapter 6).

    ``build(train, samples, rng, context) -> kernel`` sees trajectories only; ``samples`` is the
    model's samples, or ``None`` for a spec with ``needs_samples=False`` (which then gets no
    perfect-model control: it is not calibrated on samples). ``params``: a JSON-able dict of
    everything besides the cell's arrays that determines the kernel; it is part of the score
    cache key (``None``: scores of this spec are never cached).

    How the kernel was obtained, for the tables: ``before_training`` marks a kernel that never
    trains on the target task (e.g. parameters calibrated on another task); ``cost_fraction``
    marks a *cheap proxy* (the same class trained on the same task) with its share of the
    expensive model's training steps.
    """

    name: str
    build: Callable
    needs_samples: bool = True
    description: str = ""
    params: dict | None = None
    before_training: bool = False
    cost_fraction: float | None = None


@dataclass
class CellScore:
    """One kernel (or reference) on one cell (Chapter 6): agreement and the perfect-model control.

    ``pearson``/``spearman``: over all bins, the two overflow bins included; ``inside_pearson``:
    over the bins inside ``[lo, hi]`` only (``NaN`` when either shift is flat there);
    ``oos_observed``/``oos_predicted``: mass recovered outside ``[lo, hi]`` or failed;
    ``ef_ceiling``: the median explained fraction an exact prediction scores at these sample
    sizes (:func:`~physmis_edu.kernels.ef_ceiling`), the value to read an EF against; ``pm_*``:
    the perfect-model control, with ``pm_params`` the kernel that calibration chose on true
    samples and ``pm_identity`` whether it left training trajectories exactly unchanged.
    """

    cell: str
    task: str
    model: str
    seed: int
    kernel: str
    pearson: float
    spearman: float
    explained_fraction: float
    sign_agree: bool
    tv_observed: float
    tv_predicted: float
    oos_observed: float
    oos_predicted: float
    null_tv99: float
    inside_pearson: float = float("nan")
    ef_ceiling: float | None = None
    pm_tv: float | None = None
    pm_null_tv99: float | None = None
    pm_pass: bool | None = None
    pm_params: str = ""
    pm_identity: bool | None = None
    params: str = ""
    seconds: float = 0.0
    dq_predicted: list | None = None
    dq_observed: list | None = None

    def as_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                for k, v in self.__dict__.items()}


_NULL_CACHE: dict = {}


def _null99(prior, n: int, bins: int) -> float:
    from ..metrics import null_quantile

    key = (prior.lo, prior.hi, n, bins)
    if key not in _NULL_CACHE:
        _NULL_CACHE[key] = null_quantile(prior, n, bins=bins, q=0.99,
                                         rng=np.random.default_rng(12345))
    return _NULL_CACHE[key]


def _tv_to_prior(prior, values, bins: int) -> tuple[float, float]:
    """TV between the prior and the histogram of ``values``, and the failed fraction."""
    from ..metrics import prior_probs, recovered_histogram, total_variation

    h = recovered_histogram(values, prior.lo, prior.hi, bins)
    if h.n_finite == 0:
        return 1.0, 1.0
    return total_variation(prior_probs(prior, bins), h.probs), h.n_failed / h.n_total


def _acts_as_identity(kernel, train: np.ndarray, n: int = 64) -> bool:
    """Whether ``kernel`` returns the first ``n`` training trajectories exactly."""
    x = train[:n]
    return bool(np.array_equal(kernel.perturb(x, np.random.default_rng(0)), x))


def perfect_model_control(task, data: CellData, spec: KernelSpec, context: Context, rng=None,
                          bins: int = 20, return_kernel: bool = False):
    """Fresh true samples fed in as the "model": the kernel calibrated on them must predict no
    drift (Chapter 6).

    Returns ``(tv, null_tv99, passed)``: ``tv`` between the prior and the histogram of
    kernel-perturbed training data recovered, the null's 99th percentile for that many
    trajectories, and whether the prediction stays inside the null (and fails fewer than 1% of
    recoveries). With ``return_kernel`` the kernel calibrated on the true samples is appended.
    """
    from ..kernels import predict_recovered

    rng = as_rng(rng)
    kernel = spec.build(data.train, data.fresh, rng, context)
    tv, failed = _tv_to_prior(task.prior, predict_recovered(task, kernel, data.train, rng), bins)
    null = _null99(task.prior, data.train.shape[0], bins)
    result = (tv, null, bool(tv <= null and failed <= 0.01))
    return result + (kernel,) if return_kernel else result


def _row(cell: Cell, name: str, ag, observed_n: int, task, bins: int, **extra) -> CellScore:
    return CellScore(
        cell=cell.label, task=cell.task, model=cell.model, seed=cell.seed, kernel=name,
        pearson=ag.pearson, spearman=ag.spearman, explained_fraction=ag.explained_fraction,
        sign_agree=ag.sign_agree, tv_observed=ag.tv_observed, tv_predicted=ag.tv_predicted,
        oos_observed=ag.oos_observed, oos_predicted=ag.oos_predicted,
        null_tv99=_null99(task.prior, observed_n, bins), inside_pearson=ag.inside_pearson,
        ef_ceiling=None if ag.ef_ceiling is None else ag.ef_ceiling[0],
        dq_predicted=ag.dq_predicted.tolist(), dq_observed=ag.dq_observed.tolist(), **extra)


def score_kernel(task, data: CellData, spec: KernelSpec, context: Context, rng=None,
                 bins: int = 20, control: bool = True, observed=None) -> CellScore:
    """Calibrate ``spec``'s kernel on a cell, predict ``q_hat`` from the training data and compare
    with ``q`` (Chapter 6). ``observed``: the model samples' recovered values, if already known."""
    from ..kernels import agreement, predict_recovered

    rng = as_rng(rng)
    start = time.perf_counter()
    kernel = spec.build(data.train, data.samples if spec.needs_samples else None, rng, context)
    predicted = predict_recovered(task, kernel, data.train, rng)
    if observed is None:
        observed = task.measure(data.samples)
    ag = agreement(task.prior, predicted, observed, bins=bins)
    pm = {}
    if control and spec.needs_samples:
        tv, null, passed, chosen = perfect_model_control(task, data, spec, context, rng, bins,
                                                         return_kernel=True)
        pm = dict(pm_tv=tv, pm_null_tv99=null, pm_pass=passed, pm_params=repr(chosen)[:120],
                  pm_identity=_acts_as_identity(chosen, data.train))
    return _row(data.cell, spec.name, ag, observed.size, task, bins, params=repr(kernel)[:120],
                seconds=time.perf_counter() - start, **pm)


def _reference(task, cell: Cell, name: str, predicted, observed, bins: int,
               params: str) -> CellScore:
    """A reference row: one set of recovered values used as the prediction of another."""
    from ..kernels import agreement

    ag = agreement(task.prior, predicted, observed, bins=bins)
    return _row(cell, name, ag, observed.size, task, bins, params=params)


def seed_ceiling(task, data: CellData, other: CellData, bins: int = 20,
                 observed=None) -> CellScore:
    """The seed-to-seed ceiling: another seed's recovered histogram used as the prediction
    (Chapter 6). It measures how reproducible the drift pattern is between training runs."""
    observed = task.measure(data.samples) if observed is None else observed
    return _reference(task, data.cell, CEILING, task.measure(other.samples), observed, bins,
                      params=f"seed {other.cell.seed}")


def split_half(task, data: CellData, bins: int = 20, observed=None) -> CellScore:
    """Within-model reliability: the even-numbered samples' histogram used to predict the
    odd-numbered ones' (Chapter 6).

    Both halves come from the *same* trained model, so this measures only the finite-sample noise
    of the observed drift; the seed-to-seed ceiling adds the variation between training runs.
    Each half has half the samples, so this understates the reliability of the full histogram.
    """
    values = task.measure(data.samples) if observed is None else observed
    return _reference(task, data.cell, SPLIT_HALF, values[0::2], values[1::2], bins,
                      params="even vs odd samples")


def _spec_source(spec: KernelSpec) -> tuple:
    try:
        return (inspect.getsourcefile(spec.build),)
    except TypeError:  # a builtin or C callable: no source file to hash
        return ()


def score_key(data: CellData, spec: KernelSpec, bins: int, stream: list,
              control: bool = True) -> dict:
    """Everything a cached score of ``spec`` on ``data`` depends on, as a JSON-able dict
    (Chapter 6). ``stream``: the entropy of the score's random stream."""
    return {"version": PANEL_VERSION, "cell": data.cell.label,
            "cell_config": config_hash(cell_config(data.cell)), "data": data.digest(),
            "kernel": spec.name, "needs_samples": spec.needs_samples, "params": spec.params,
            "bins": int(bins), "stream": [int(v) for v in stream], "control": bool(control),
            "numpy": np.__version__, "code": score_code_hash(_spec_source(spec))}


def _score_path(cache: Path, key: dict) -> Path:
    cell = key["cell"].replace("/", "_")
    return Path(cache) / "scores" / cell / f"{config_hash(key)}.json"


def _jsonable(obj):
    """``obj`` as it reads back from JSON (numpy scalars become plain numbers)."""
    return json.loads(json.dumps(obj, default=float))


def _load_score(path: Path, key: dict) -> CellScore | None:
    if not path.exists():
        return None
    try:
        blob = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # a torn or foreign file: rescore and overwrite
    # The file name is a short hash of the key: compare the whole key to rule out a collision.
    if blob.get("key") != _jsonable(key):
        return None
    return CellScore(**blob["score"])


def _save_score(path: Path, key: dict, score: CellScore) -> None:
    # json writes floats with repr (exact round trip) and NaN as NaN: the reloaded score is
    # identical.
    save_text(path, json.dumps({"key": _jsonable(key), "score": dict(score.__dict__)},
                               default=float))


def evaluate_panel(datas: list[CellData], specs: list[KernelSpec], bins: int = 20, rng=0,
                   log: Callable | None = None, only=None, score_cache=None) -> list[CellScore]:
    """Score every kernel spec on every cell, plus the seed-to-seed ceiling and the split half
    (Chapter 6).

    Each (cell, kernel) gets its own random stream, so adding a kernel does not change the
    others' numbers. ``only``: indices of the cells to score (all by default; the others still
    serve as the other seed of the ceiling), so that workers can split the panel.
    ``score_cache``: a folder; each score of a spec with ``params`` is read from it when its
    :func:`score_key` matches, else computed and written there (``None``: always compute).
    """
    by_key = {(d.cell.task, d.cell.model, d.cell.seed): d for d in datas}
    scores = []
    for i, data in enumerate(datas):
        if only is not None and i not in only:
            continue
        cell = data.cell
        task = cell.make_task()
        context = Context(model=cell.model, residual=task.c_free_residual(), task=cell.task,
                          seed=cell.seed)
        observed = task.measure(data.samples)
        seeds = sorted(s for (t, m, s) in by_key if t == cell.task and m == cell.model)
        if len(seeds) > 1:
            other = seeds[(seeds.index(cell.seed) + 1) % len(seeds)]
            scores.append(seed_ceiling(task, data, by_key[(cell.task, cell.model, other)], bins,
                                       observed))
        scores.append(split_half(task, data, bins, observed))
        for j, spec in enumerate(specs):
            entropy = [int(rng), i, j, cell.seed]
            key = path = None
            if score_cache is not None and spec.params is not None:
                key = score_key(data, spec, bins, entropy)
                path = _score_path(score_cache, key)
                cached = _load_score(path, key)
                if cached is not None:
                    scores.append(cached)
                    if log is not None:
                        log(cached)
                    continue
            scores.append(score_kernel(task, data, spec, context,
                                       np.random.default_rng(entropy), bins, observed=observed))
            if path is not None:
                _save_score(path, key, scores[-1])
            if log is not None:
                log(scores[-1])
    return scores
