"""The kernel benchmark panel: does a data deviation kernel predict a trained model's drift? (Chapter 6)

A *cell* is (task, model class, seed). For each cell the panel trains the model on curated
trajectories, caches the training data, fresh true samples and the model's samples on disk
(``.npz`` keyed by task, model, seed and a hash of the configuration, which includes a hash of the
``models`` and ``tasks`` source code: :func:`sample_code_hash`), and then scores kernels
against the observed drift without retraining:

* per kernel and cell: Pearson and Spearman of the predicted versus observed per-bin shifts,
  explained fraction, sign of the mean shift, observed and predicted out-of-support mass, and the
  *inside-range* Pearson over the ``B`` bins inside ``[lo, hi]`` only. The all-bins Pearson
  includes the two overflow bins: where a model puts most of its mass outside the range, any kernel
  that also pushes mass out scores near 1 there whatever it predicts inside; the inside-range
  Pearson cannot be won that way;
* the *seed-to-seed ceiling*: another seed's histogram used as the prediction;
* the *perfect-model control*: fresh true samples fed in as "model samples"; a kernel calibrated
  on them must predict no drift beyond the finite-sample null.

A *proxy* (:func:`load_or_train_proxy`) is the cell's model class trained on the cell's own training
trajectories for a small share of its optimiser steps, seeded from its own stream (never the cell's
seed), and cached like the cells (``proxy_*.npz``, keyed by :func:`proxy_config`). Its samples give a
*before-training* kernel: they use no sample of the expensive model. There is no perfect-model control
for it (reported as ``-`` like the other before-training kernels): that control asks whether a kernel
*calibrated on samples* predicts no drift when the samples are true data, but the proxy is not
calibrated on samples at all; its drift is a property of the model class under a short budget, and
feeding true data in place of the proxy would simply return the prior.

Kernels enter through :class:`KernelSpec`, whose ``build(train, samples, rng)`` sees trajectories
only, never the control ``c`` (nor the task's recovery): calibration cannot be fitted to the answer.
Torch is imported only when a model is trained.

Scores are cached too (:func:`evaluate_panel` with ``score_cache``), one small JSON file per
(cell, kernel spec), so that a warm panel runs in seconds. The key (:func:`score_key`) holds
everything a score depends on: the cell's configuration hash and a digest of its arrays, the spec's
name and ``params``, the scoring settings (bins, the random stream's seed, whether the
perfect-model control runs), the numpy version, and a hash of the *source code* that computes
scores (:func:`score_code_hash`: ``kernels.py``, ``kernel_families.py``, ``panel.py``,
``metrics.py``, the ``tasks`` package, and the file that defines the spec's ``build``). Editing any
of these files therefore invalidates every cached score; nothing is ever reused across a code
change. A spec without ``params`` is never cached.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ._validation import as_rng, check_positive_int, check_seed, check_trajectories

__all__ = [
    "RESULTS_DIR", "PANEL_TASKS", "CORE_TASKS", "APPLIED_TASKS", "PANEL_MODELS", "PANEL_SIZES", "PANEL_BUDGETS", "Cell", "CellData", "panel_cells",
    "make_task", "cell_config", "config_hash", "load_or_train", "KernelSpec", "CellScore",
    "score_kernel", "seed_ceiling", "perfect_model_control", "evaluate_panel", "leaderboard",
    "format_leaderboard", "score_code_hash", "score_key", "proxy_seed", "proxy_config", "proxy_path", "ProxyData",
    "load_or_train_proxy", "sample_code_hash", "split_half", "SPLIT_HALF", "CEILING", "is_reference", "pooled_leaderboard", "format_pooled", "POOLED_CEILING",
]

PANEL_VERSION = 1

# The panel's committed results files, shipped as package data so Chapter 6 reads them anywhere
# (Colab installs the package, not the repository).
RESULTS_DIR = Path(__file__).resolve().parent / "data" / "panel"

# Task constructors by short key. The toy is observed over 8 steps so that every model class
# (the U-Net halves the length twice) sees a sequence; its trajectory is a repeated point.
# ``CORE_TASKS`` are the default panel (the one with a time budget); ``APPLIED_TASKS`` (the U-maze's
# travel distance and the double pendulum's energy, 32 steps each) are run on request.
PANEL_TASKS: dict[str, Callable] = {}
CORE_TASKS = ("toy", "sine", "logistic-periodic", "logistic-chaotic")
# Each task's fixed index in its data streams (never derived from the registry's order, so that a new
# task leaves every existing task's data, and hence its cache, unchanged).
_TASK_STREAM = {"logistic-chaotic": 0, "logistic-periodic": 1, "sine": 2, "toy": 3, "maze": 4, "pendulum": 5}
APPLIED_TASKS = ("maze", "pendulum")


def _register_tasks():
    from .tasks import CurveToy, DoublePendulum, LogisticMap, MazeTask, Sinusoid

    PANEL_TASKS.update({
        "toy": lambda: CurveToy(length=8),
        "sine": lambda: Sinusoid(length=32),
        "logistic-periodic": lambda: LogisticMap(lo=2.8, hi=3.4, length=32),
        "logistic-chaotic": lambda: LogisticMap(lo=3.6, hi=4.0, length=32),
        "maze": lambda: MazeTask(maze="umaze", length=32),
        "pendulum": lambda: DoublePendulum(length=32),
    })


def make_task(key: str):
    """The panel task for a short key (``toy``, ``sine``, ``logistic-periodic``, ``logistic-chaotic``,
    and the applied ``maze`` and ``pendulum``)."""
    if not PANEL_TASKS:
        _register_tasks()
    if key not in PANEL_TASKS:
        raise ValueError(f"task key must be one of {sorted(PANEL_TASKS)}; got {key!r}")
    return PANEL_TASKS[key]()


PANEL_MODELS = ("DiffusionUNet", "DiffusionMLP", "Transformer", "VAE")

# Dataset sizes per profile: training trajectories, model samples (= fresh true samples for the
# perfect-model control).
PANEL_SIZES = {
    "ci": dict(n_train=2000, n_samples=1500),
    "cpu": dict(n_train=4000, n_samples=4000),
    "gpu": dict(n_train=10000, n_samples=10000),
}

# Overrides of the models' own profile configs. In ``ci`` the two slow models get reduced budgets
# so that the whole panel (48 cells) trains in minutes on 2 cores; their drift is still far above
# the null, but part of it is under-training (see Chapter 6).
PANEL_BUDGETS = {
    "ci": {"DiffusionUNet": dict(train_steps=250, batch_size=128), "Transformer": dict(train_steps=300),
           "DiffusionMLP": {}, "VAE": {}},
    "cpu": {name: {} for name in PANEL_MODELS},
    "gpu": {name: {} for name in PANEL_MODELS},
}


@dataclass(frozen=True)
class Cell:
    """One panel cell: a task key, a model class name and a seed (Chapter 6)."""

    task: str
    model: str
    seed: int
    profile: str = "ci"

    def __post_init__(self):
        if self.model not in PANEL_MODELS:
            raise ValueError(f"model must be one of {PANEL_MODELS}; got {self.model!r}")
        if self.profile not in PANEL_SIZES:
            raise ValueError(f"profile must be one of {tuple(PANEL_SIZES)}; got {self.profile!r}")
        make_task(self.task)  # validates the key
        object.__setattr__(self, "seed", check_positive_int(self.seed, "seed", minimum=0))

    @property
    def label(self) -> str:
        return f"{self.task}/{self.model}/s{self.seed}"


def panel_cells(tasks=None, models=PANEL_MODELS, seeds=(0, 1, 2), profile: str = "ci") -> list[Cell]:
    """Every (task, model, seed) cell of the panel (Chapter 6); ``tasks`` defaults to :data:`CORE_TASKS`."""
    if not PANEL_TASKS:
        _register_tasks()
    tasks = list(CORE_TASKS) if tasks is None else list(tasks)
    seeds = [check_seed(s, f"seeds[{i}]") for i, s in enumerate(seeds)]  # 0.5 must not become 0
    for name, values in (("tasks", tasks), ("models", list(models)), ("seeds", seeds)):
        if len(set(values)) != len(values) or not values:
            raise ValueError(f"{name} must be non-empty and without repeats (a repeat gives "
                             f"duplicate cells); got {values!r}")
    return [Cell(t, m, s, profile) for t in tasks for m in models for s in seeds]


def _model_config(model: str, profile: str) -> dict:
    from .models import default_config

    return {**default_config(model, profile), **PANEL_BUDGETS[profile][model]}


def sample_code_hash(parts=("models", "tasks")) -> str:
    """Hash of the library source that generates a cell's arrays: the ``models`` and ``tasks`` packages (Chapter 6).

    Part of every cell's and proxy's cache key, so that an edit to a model or a task retrains instead
    of reusing samples that the current code would not produce. (Without it, a cache made before a
    change to the diffusion models' code was silently reused.)
    """
    root = Path(__file__).resolve().parent
    return _source_hash(tuple(root / p for p in parts))


def cell_config(cell: Cell) -> dict:
    """Everything that determines a cell's cached arrays, as a JSON-able dict (Chapter 6)."""
    return {"version": PANEL_VERSION, "task": repr(make_task(cell.task)), "model": cell.model,
            "model_config": _model_config(cell.model, cell.profile), "sizes": PANEL_SIZES[cell.profile],
            "seed": cell.seed, "code": sample_code_hash()}


def config_hash(config: dict) -> str:
    """Short stable hash of a JSON-able configuration (the cache key's last part)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


@dataclass
class CellData:
    """Cached arrays of a cell (Chapter 6).

    ``train``: the training trajectories; ``fresh``: independent true trajectories (the perfect
    model's "samples"); ``samples``: the trained model's samples; ``seconds``: training plus
    sampling time when it was made (0 if it came from the cache).
    """

    cell: Cell
    train: np.ndarray
    fresh: np.ndarray
    samples: np.ndarray
    seconds: float = 0.0
    cached: bool = True

    def digest(self) -> str:
        """SHA-256 of the three arrays (dtype, shape and bytes): part of a cached score's key."""
        if getattr(self, "_digest", None) is None:
            h = hashlib.sha256()
            for a in (self.train, self.fresh, self.samples):
                a = np.ascontiguousarray(a)
                h.update(f"{a.dtype.str}{a.shape}".encode())
                h.update(a.view(np.uint8).reshape(-1))
            self._digest = h.hexdigest()[:16]
        return self._digest


def _task_data(cell: Cell, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Training and fresh true trajectories of (task, seed), shared by all model classes."""
    sizes = PANEL_SIZES[cell.profile]
    config = {"version": PANEL_VERSION, "task": repr(make_task(cell.task)), "sizes": sizes, "seed": cell.seed,
              "code": sample_code_hash(("tasks",))}
    path = cache / f"data_{cell.task}_s{cell.seed}_{config_hash(config)}.npz"
    if path.exists():
        with np.load(path) as blob:
            return blob["train"], blob["fresh"]
    task = make_task(cell.task)
    # Independent streams per (task, seed, purpose), reproducible on any machine.
    task_index = _TASK_STREAM[cell.task]
    train, _ = task.sample(sizes["n_train"], rng=np.random.default_rng([cell.seed, task_index, 0]))
    fresh, _ = task.sample(sizes["n_samples"], rng=np.random.default_rng([cell.seed, task_index, 1]))
    _atomic_savez(path, train=train, fresh=fresh)
    return train, fresh


def _atomic_savez(path: Path, **arrays) -> None:
    """Write ``path`` via a temporary file in the same folder and ``os.replace``.

    The temporary name ends in ``.tmp``, never ``.npz``, so an interrupted write is never taken
    for a cache entry; temporary files left by writers that no longer run are removed here.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:  # a file object: numpy adds no .npz suffix
            np.savez_compressed(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` via a ``.tmp`` file in its folder, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_temps(folder) -> list[Path]:
    """Delete temporary files of interrupted cache writes in ``folder`` (Chapter 6).

    Those are ``NAME.PID.tmp`` (and ``NAME.PID.tmp.npz`` from older versions) whose writer
    process ``PID`` no longer runs; files of running writers are left alone. Returns the paths
    removed.
    """
    removed = []
    for tmp in list(Path(folder).glob("*.tmp")) + list(Path(folder).glob("*.tmp.npz")):
        parts = tmp.name.split(".")
        pid = parts[-3] if tmp.name.endswith(".tmp.npz") else parts[-2]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_running(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def cache_path(cell: Cell, cache) -> Path:
    """Where a cell's model samples live: ``{cache}/{task}_{model}_s{seed}_{hash}.npz``."""
    return Path(cache) / f"{cell.task}_{cell.model}_s{cell.seed}_{config_hash(cell_config(cell))}.npz"


def load_or_train(cell: Cell, cache="benchmarks/out/panel", device: str | None = None,
                  threads: int | None = 1) -> CellData:
    """A cell's training data, fresh true samples and model samples: from the cache, or trained now (Chapter 6).

    ``threads``: torch threads while training (1 keeps parallel workers from fighting over cores).
    The model is trained on the trajectories only; ``c`` is never passed to it.
    """
    cache = Path(cache)
    train, fresh = _task_data(cell, cache)
    path = cache_path(cell, cache)
    if path.exists():
        with np.load(path) as blob:
            return CellData(cell, train, fresh, blob["samples"], float(blob["seconds"]), cached=True)
    import torch

    from .models import MODELS

    if threads is not None:
        torch.set_num_threads(int(threads))
    start = time.perf_counter()
    model = MODELS[cell.model](**_model_config(cell.model, cell.profile), seed=cell.seed, device=device,
                               progress=False)
    model.fit(train)
    samples = model.sample(PANEL_SIZES[cell.profile]["n_samples"], rng=np.random.default_rng([cell.seed, 7]))
    seconds = time.perf_counter() - start
    _atomic_savez(path, samples=samples, seconds=np.float64(seconds))
    return CellData(cell, train, fresh, samples, seconds, cached=False)


# ---------------------------------------------------------------------------------------------
# Cheap proxy models (a before-training kernel)
# ---------------------------------------------------------------------------------------------

def _check_fraction(fraction) -> float:
    fraction = float(fraction)
    if not (0.0 < fraction <= 1.0):
        raise ValueError(f"fraction must lie in (0, 1] (the share of the cell's train_steps); got {fraction!r}")
    return fraction


def proxy_seed(cell: Cell) -> int:
    """The proxy's model seed: drawn from its own stream ``[seed, 8]``, never the cell's seed itself."""
    return int(np.random.default_rng([cell.seed, 8]).integers(2**31))


def proxy_config(cell: Cell, fraction: float) -> dict:
    """Everything that determines a cell's proxy samples, as a JSON-able dict (Chapter 6).

    The proxy is the cell's model class with ``ceil(fraction * train_steps)`` optimiser steps (the
    rest of the configuration unchanged), trained on the cell's training trajectories with seed
    :func:`proxy_seed`, and sampled ``n_train`` times from the stream ``[seed, 7, 1]``.
    """
    fraction = _check_fraction(fraction)
    config = _model_config(cell.model, cell.profile)
    config["train_steps"] = max(1, int(np.ceil(fraction * config["train_steps"])))
    return {"version": PANEL_VERSION, "proxy_of": cell_config(cell), "fraction": fraction, "model_config": config,
            "seed": proxy_seed(cell), "n_samples": PANEL_SIZES[cell.profile]["n_train"], "sample_stream": [cell.seed, 7, 1]}


def proxy_path(cell: Cell, cache, fraction: float) -> Path:
    """Where a cell's proxy samples live: ``{cache}/proxy_{task}_{model}_s{seed}_{hash}.npz``."""
    return Path(cache) / f"proxy_{cell.task}_{cell.model}_s{cell.seed}_{config_hash(proxy_config(cell, fraction))}.npz"


@dataclass
class ProxyData:
    """A cell's proxy samples (Chapter 6): ``samples`` ``(n_train, L, d)``, ``seconds`` of training plus sampling."""

    cell: Cell
    fraction: float
    samples: np.ndarray
    seconds: float = 0.0
    cached: bool = True

    def digest(self) -> str:
        """SHA-256 of the samples (dtype, shape and bytes), short."""
        a = np.ascontiguousarray(self.samples)
        h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.view(np.uint8).reshape(-1))
        return h.hexdigest()[:16]


def load_or_train_proxy(cell: Cell, cache="benchmarks/out/panel", fraction: float = 0.125, device: str | None = None,
                        threads: int | None = 1) -> ProxyData:
    """A cheap proxy of a cell's model, trained on the cell's training trajectories only: its samples (Chapter 6).

    From the cache, or trained now (:func:`proxy_config`). Neither ``c`` nor the task's recovery is
    used: only :func:`_task_data`'s training trajectories reach the model.
    """
    cache = Path(cache)
    path = proxy_path(cell, cache, fraction)
    if path.exists():
        with np.load(path) as blob:
            return ProxyData(cell, _check_fraction(fraction), blob["samples"], float(blob["seconds"]), cached=True)
    config = proxy_config(cell, fraction)
    train, _ = _task_data(cell, cache)
    import torch

    from .models import MODELS

    if threads is not None:
        torch.set_num_threads(int(threads))
    start = time.perf_counter()
    model = MODELS[cell.model](**config["model_config"], seed=config["seed"], device=device, progress=False)
    model.fit(train)
    samples = model.sample(config["n_samples"], rng=np.random.default_rng(config["sample_stream"]))
    seconds = time.perf_counter() - start
    _atomic_savez(path, samples=samples, seconds=np.float64(seconds))
    return ProxyData(cell, config["fraction"], samples, seconds, cached=False)


# ---------------------------------------------------------------------------------------------
# Scoring kernels
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Context:
    """What a kernel's calibration may know besides trajectories (Chapter 6).

    ``model``: the model class name (known before training); ``residual``: a c-free physical
    residual ``x -> (n,)`` of the task's rule (:func:`physmis_edu.kernel_families.rule_residual`),
    or ``None``; ``task``: the panel task's key (to pick parameters calibrated on *another* task). Neither the control ``c`` nor the task's recovery is reachable from here.
    """

    model: str
    residual: Callable | None = None
    task: str = ""


@dataclass
class KernelSpec:
    """A named way to build a kernel for a cell (Chapter 6).

    ``build(train, samples, rng, context) -> kernel`` sees trajectories only; ``samples`` is the
    model's samples (``None`` is never passed to a spec with ``needs_samples``). A spec with
    ``needs_samples=False`` is a *before-training* kernel: it ignores ``samples`` entirely.
    ``params``: a JSON-able dict of everything besides the cell's arrays that determines the kernel
    (family, grid, calibration settings, and the data of any *other* cell it borrows from); it is
    part of the score cache key. ``None`` (the default) means scores of this spec are never cached.
    """

    name: str
    build: Callable
    needs_samples: bool = True
    description: str = ""
    params: dict | None = None


@dataclass
class CellScore:
    """One kernel on one cell (Chapter 6): agreement figures and the perfect-model control.

    ``pearson``/``spearman``: over all bins, the two overflow bins included; ``inside_pearson``:
    over the ``B`` bins inside ``[lo, hi]`` only (``NaN`` when either shift is flat there);
    ``oos_observed``/``oos_predicted``: mass recovered outside ``[lo, hi]`` or failed; ``pm_*``: the
    perfect-model control, with ``pm_params`` the kernel that calibration chose on true samples and
    ``pm_identity`` whether that kernel left training trajectories exactly unchanged (chose "no
    perturbation").
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
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in self.__dict__.items()}


def _oos(values: np.ndarray, lo: float, hi: float) -> float:
    """Mass recovered outside ``[lo, hi]`` or failed, as a fraction of all trajectories."""
    with np.errstate(invalid="ignore"):
        return float(np.mean(~((values >= lo) & (values <= hi))))


def _inside_pearson(ag) -> float:
    """Pearson of the per-bin shifts over the bins inside ``[lo, hi]`` (the overflow bins dropped)."""
    from .kernels import _pearson

    return _pearson(ag.dq_predicted[1:-1], ag.dq_observed[1:-1])


def _acts_as_identity(kernel, train: np.ndarray, n: int = 64) -> bool:
    """Whether ``kernel`` returns the first ``n`` training trajectories exactly (its own random stream)."""
    x = train[:n]
    return bool(np.array_equal(kernel.perturb(x, np.random.default_rng(0)), x))


_NULL_CACHE: dict = {}


def _null99(prior, n: int, bins: int) -> float:
    from .metrics import null_quantile

    key = (prior.lo, prior.hi, n, bins)
    if key not in _NULL_CACHE:
        _NULL_CACHE[key] = null_quantile(prior, n, bins=bins, q=0.99, rng=np.random.default_rng(12345))
    return _NULL_CACHE[key]


def _tv_to_prior(prior, values, bins: int) -> tuple[float, float]:
    """TV between the prior and the histogram of ``values``, and the failed fraction."""
    from .metrics import prior_probs, recovered_histogram, total_variation

    h = recovered_histogram(values, prior.lo, prior.hi, bins)
    if h.n_finite == 0:
        return 1.0, 1.0
    return total_variation(prior_probs(prior, bins), h.probs), h.n_failed / h.n_total


def perfect_model_control(task, data: CellData, spec: KernelSpec, context: Context, rng=None,
                          bins: int = 20, return_kernel: bool = False):
    """Fresh true samples fed in as the "model": the kernel calibrated on them must predict no drift (Chapter 6).

    Returns ``(tv, null_tv99, passed)``: ``tv`` between the prior and the histogram of kernel-perturbed
    training data recovered, the null's 99th percentile for that many trajectories, and whether the
    prediction stays inside the null (and fails fewer than 1% of recoveries). With ``return_kernel``
    the kernel calibrated on the true samples is appended (to see whether it chose the identity).
    """
    from .kernels import predict_recovered

    rng = as_rng(rng)
    kernel = spec.build(data.train, data.fresh, rng, context)
    tv, failed = _tv_to_prior(task.prior, predict_recovered(task, kernel, data.train, rng), bins)
    null = _null99(task.prior, data.train.shape[0], bins)
    result = (tv, null, bool(tv <= null and failed <= 0.01))
    return result + (kernel,) if return_kernel else result


def score_kernel(task, data: CellData, spec: KernelSpec, context: Context, rng=None, bins: int = 20,
                 control: bool = True) -> CellScore:
    """Calibrate ``spec``'s kernel on a cell, predict ``q_hat`` from the training data and compare with ``q`` (Chapter 6)."""
    from .kernels import agreement, predict_recovered

    rng = as_rng(rng)
    start = time.perf_counter()
    kernel = spec.build(data.train, data.samples if spec.needs_samples else None, rng, context)
    predicted = predict_recovered(task, kernel, data.train, rng)
    observed = task.measure(data.samples)
    ag = agreement(task.prior, predicted, observed, bins=bins)
    pm = (None, None, None, None)
    if control and spec.needs_samples:
        pm = perfect_model_control(task, data, spec, context, rng, bins, return_kernel=True)
    cell = data.cell
    return CellScore(
        cell=cell.label, task=cell.task, model=cell.model, seed=cell.seed, kernel=spec.name,
        pearson=ag.pearson, spearman=ag.spearman, explained_fraction=ag.explained_fraction,
        sign_agree=ag.sign_agree, tv_observed=ag.tv_observed, tv_predicted=ag.tv_predicted,
        oos_observed=_oos(observed, task.lo, task.hi), oos_predicted=_oos(predicted, task.lo, task.hi),
        null_tv99=_null99(task.prior, observed.size, bins), inside_pearson=_inside_pearson(ag),
        pm_tv=pm[0], pm_null_tv99=pm[1], pm_pass=pm[2], pm_params="" if pm[3] is None else repr(pm[3])[:120],
        pm_identity=None if pm[3] is None else _acts_as_identity(pm[3], data.train),
        params=repr(kernel)[:120], seconds=time.perf_counter() - start,
        dq_predicted=ag.dq_predicted.tolist(), dq_observed=ag.dq_observed.tolist())


def seed_ceiling(task, data: CellData, other: CellData, bins: int = 20) -> CellScore:
    """The seed-to-seed ceiling: another seed's recovered histogram used as the prediction (Chapter 6).

    No kernel built from the training data can be expected to beat it by much: it measures how
    reproducible the drift pattern is.
    """
    return _reference_score(task, data.cell, CEILING, task.measure(other.samples), task.measure(data.samples), bins,
                            params=f"seed {other.cell.seed}")


def _reference_score(task, cell: Cell, name: str, predicted: np.ndarray, observed: np.ndarray, bins: int,
                     params: str) -> CellScore:
    """A reference row: one set of recovered values used as the prediction of another (no kernel, no control)."""
    from .kernels import agreement

    ag = agreement(task.prior, predicted, observed, bins=bins)
    return CellScore(
        cell=cell.label, task=cell.task, model=cell.model, seed=cell.seed, kernel=name,
        pearson=ag.pearson, spearman=ag.spearman, explained_fraction=ag.explained_fraction,
        sign_agree=ag.sign_agree, tv_observed=ag.tv_observed, tv_predicted=ag.tv_predicted,
        oos_observed=_oos(observed, task.lo, task.hi), oos_predicted=_oos(predicted, task.lo, task.hi),
        null_tv99=_null99(task.prior, observed.size, bins), inside_pearson=_inside_pearson(ag),
        params=params, dq_predicted=ag.dq_predicted.tolist(), dq_observed=ag.dq_observed.tolist())


CEILING = "ceiling (other seed)"
SPLIT_HALF = "split half (same model)"


def is_reference(name: str) -> bool:
    """Whether a leaderboard row is a reference (a ceiling or the split half) rather than a kernel (Chapter 6)."""
    return name.startswith("ceiling") or name == SPLIT_HALF


def split_half(task, data: CellData, bins: int = 20) -> CellScore:
    """Within-model reliability: the even-numbered samples' histogram used to predict the odd-numbered ones' (Chapter 6).

    Both halves come from the *same* trained model, so this measures only the finite-sample noise of
    the observed drift; the seed-to-seed ceiling adds the variation between training runs. Where the
    split half is high and the ceiling low, the drift pattern is real but specific to each training
    run: a kernel that sees only the training data (a before-training kernel) cannot be expected to
    beat the ceiling, while one calibrated on the model's own samples may. Each half has half the
    samples, so this understates the reliability of the full-sample histogram.
    """
    values = task.measure(data.samples)
    return _reference_score(task, data.cell, SPLIT_HALF, values[0::2], values[1::2], bins, params="even vs odd samples")


# Source files whose code computes a score; a change in any of them invalidates cached scores.
_SCORE_CODE = ("kernels.py", "kernel_families.py", "panel.py", "metrics.py", "tasks")


def _file_sha(path: Path) -> str:
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


_CODE_HASHES: dict = {}


def score_code_hash(extra=()) -> str:
    """Hash of the source code that computes a score (Chapter 6): the library's ``kernels.py``,
    ``kernel_families.py``, ``panel.py``, ``metrics.py`` and ``tasks`` package, plus ``extra`` files
    (e.g. the script that defines the kernel specs). Part of every cached score's key."""
    root = Path(__file__).resolve().parent
    return _source_hash(tuple(root / name for name in _SCORE_CODE) + tuple(Path(e).resolve() for e in extra))


def _source_hash(paths: tuple) -> str:
    """Short hash of the source files under ``paths`` (files or package folders), memoised per process."""
    if paths not in _CODE_HASHES:
        _CODE_HASHES[paths] = hashlib.sha256("".join(_file_sha(p) for p in paths).encode()).hexdigest()[:16]
    return _CODE_HASHES[paths]


def _spec_source(spec: KernelSpec) -> tuple:
    import inspect

    try:
        return (inspect.getsourcefile(spec.build),)
    except TypeError:  # a builtin or C callable: no source file to hash
        return ()


def score_key(data: CellData, spec: KernelSpec, bins: int, stream: list, control: bool = True) -> dict:
    """Everything a cached score of ``spec`` on ``data`` depends on, as a JSON-able dict (Chapter 6).

    ``stream``: the entropy of the score's random stream (``numpy.random.default_rng(stream)``).
    """
    return {"version": PANEL_VERSION, "cell": data.cell.label, "cell_config": config_hash(cell_config(data.cell)),
            "data": data.digest(), "kernel": spec.name, "needs_samples": spec.needs_samples,
            "params": spec.params, "bins": int(bins), "stream": [int(v) for v in stream], "control": bool(control),
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    # json writes floats with repr (exact round trip) and NaN as NaN: the reloaded score is identical.
    tmp.write_text(json.dumps({"key": _jsonable(key), "score": dict(score.__dict__)}, default=float))
    os.replace(tmp, path)


def evaluate_panel(datas: list[CellData], specs: list[KernelSpec], bins: int = 20, rng=0,
                   residual_for: Callable | None = None, log: Callable | None = None,
                   only=None, score_cache=None) -> list[CellScore]:
    """Score every kernel spec on every cell, plus the seed-to-seed ceiling and the split half (Chapter 6).

    ``residual_for(task) -> callable or None`` supplies the c-free physical residual for
    :class:`Context`. Each (cell, kernel) gets its own random stream, so adding a kernel does not
    change the others' numbers. ``only``: indices of the cells to score (all by default; the
    others still serve as the other seed of the ceiling), so that workers can split the panel.
    ``score_cache``: a folder; each score of a spec with ``params`` is read from it when its
    :func:`score_key` matches, else computed and written there (``None``: always compute). A
    cached score is the stored result of the same computation, so the numbers are identical; its
    ``seconds`` is the time the original computation took.
    """
    by_key = {(d.cell.task, d.cell.model, d.cell.seed): d for d in datas}
    scores = []
    for i, data in enumerate(datas):
        if only is not None and i not in only:
            continue
        cell = data.cell
        task = make_task(cell.task)
        context = Context(model=cell.model, residual=None if residual_for is None else residual_for(task), task=cell.task)
        seeds = sorted(s for (t, m, s) in by_key if t == cell.task and m == cell.model)
        if len(seeds) > 1:
            other = seeds[(seeds.index(cell.seed) + 1) % len(seeds)]
            scores.append(seed_ceiling(task, data, by_key[(cell.task, cell.model, other)], bins))
        scores.append(split_half(task, data, bins))
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
            scores.append(score_kernel(task, data, spec, context, np.random.default_rng(entropy), bins))
            if path is not None:
                _save_score(path, key, scores[-1])
            if log is not None:
                log(scores[-1])
    return scores


# ---------------------------------------------------------------------------------------------
# Leaderboard
# ---------------------------------------------------------------------------------------------

def _median(values) -> float:
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    return float(np.median(v)) if v.size else float("nan")


def _group_medians(entries) -> dict:
    """``pearson_{model}``, ``pearson_{task}``, ``inside_{model}``, ``inside_{task}``: medians of
    ``(task, model, pearson, inside_pearson)`` entries per model class (all of them) and per task present."""
    tasks = sorted({t for t, _, _, _ in entries})
    out = {}
    for prefix, col in (("pearson", 2), ("inside", 3)):
        for model in PANEL_MODELS:
            out[f"{prefix}_{model}"] = _median(e[col] for e in entries if e[1] == model)
        for task in tasks:
            out[f"{prefix}_{task}"] = _median(e[col] for e in entries if e[0] == task)
    return out


def leaderboard(scores: list[CellScore], seeds=None) -> list[dict]:
    """One row per kernel: medians over cells (only ``seeds`` if given), best median Pearson first (Chapter 6).

    Columns: ``pearson`` and ``spearman`` (median, all bins), ``inside_pearson`` (median Pearson over
    the bins inside ``[lo, hi]`` only), ``ef`` (median explained fraction), ``sign`` (fraction of
    cells with the mean shift's sign right), ``pm_pass`` (perfect-model pass rate; ``None`` for
    before-training kernels, which ignore the samples), ``pm_identity`` (fraction of perfect-model
    calibrations that chose a kernel acting as the identity), ``oos_observed``
    and ``oos_predicted`` (median out-of-range mass), ``tv_observed`` (median TV between the prior
    and the observed histogram: the size of the drift being predicted), ``n`` (cells), the median Pearson per model
    class and per task (``pearson_{model}``, ``pearson_{task}``) and the same for the inside-range
    Pearson (``inside_{model}``, ``inside_{task}``).
    """
    rows = {}
    for s in scores:
        if seeds is not None and s.seed not in seeds:
            continue
        rows.setdefault(s.kernel, []).append(s)
    table = []
    for name, group in rows.items():
        pm = [g.pm_pass for g in group if g.pm_pass is not None]
        row = {"kernel": name, "n": len(group),
               "pearson": _median(g.pearson for g in group), "spearman": _median(g.spearman for g in group),
               "ef": _median(g.explained_fraction for g in group),
               "sign": float(np.mean([g.sign_agree for g in group])),
               "pm_pass": float(np.mean(pm)) if pm else None,
               "inside_pearson": _median(g.inside_pearson for g in group),
               "pm_identity": float(np.mean([bool(g.pm_identity) for g in group if g.pm_pass is not None]))
               if pm else None,
               "oos_observed": _median(g.oos_observed for g in group),
               "oos_predicted": _median(g.oos_predicted for g in group),
               "tv_observed": _median(g.tv_observed for g in group)}
        row.update(_group_medians([(g.task, g.model, g.pearson, g.inside_pearson) for g in group]))
        table.append(row)
    table.sort(key=lambda r: -np.nan_to_num(r["pearson"], nan=-9))
    return table


POOLED_CEILING = "ceiling (tune seed)"


def pooled_leaderboard(scores: list[CellScore], seeds, reference_seed: int) -> list[dict]:
    """Class-level agreement: shifts averaged over ``seeds`` per (task, model class) before comparing (Chapter 6).

    A kernel describes what a model class does to the data, so the natural target is the class's
    *expected* drift, not one training run's. For each kernel and (task, model) group, the observed
    shift is the mean of the cells' observed shifts over ``seeds`` (equal sample sizes: the shift of
    the pooled samples) and the prediction is the mean of the kernel's per-seed predictions; Pearson,
    inside-range Pearson, Spearman and the explained fraction are computed on these means, then the
    median over groups is taken. The reference row :data:`POOLED_CEILING` predicts the same target
    with the observed shift of ``reference_seed`` (the tune seed, never among ``seeds``): how well one
    other training run predicts the mean. Rows are sorted by median Pearson, like :func:`leaderboard`.
    """
    from .kernels import _pearson, _spearman

    seeds = {int(v) for v in seeds}
    if int(reference_seed) in seeds:
        raise ValueError(f"reference_seed ({reference_seed}) must not be among seeds {sorted(seeds)}")
    groups: dict = {}
    reference: dict = {}
    by_cell: dict = {}  # (task, model) -> {seed: observed shift}; every row of a cell carries the same one
    for s in scores:
        if s.dq_observed is None:
            continue
        if s.seed == reference_seed:
            reference.setdefault((s.task, s.model), np.asarray(s.dq_observed))
        if s.seed in seeds and not is_reference(s.kernel):
            groups.setdefault(s.kernel, {}).setdefault((s.task, s.model), {})[s.seed] = s
            by_cell.setdefault((s.task, s.model), {}).setdefault(s.seed, s.dq_observed)
    # The target: every (task, model) with all seeds present. The reference row needs a reference-seed histogram too.
    observed = {key: np.mean(list(dq.values()), axis=0) for key, dq in by_cell.items() if set(dq) == seeds}
    rows = {POOLED_CEILING: {key: (reference[key], dq) for key, dq in observed.items() if key in reference}}
    for kernel, by_group in groups.items():
        rows[kernel] = {key: (np.mean([c.dq_predicted for c in cells.values()], axis=0), observed[key])
                        for key, cells in by_group.items() if set(cells) == seeds and cells[min(seeds)].dq_predicted is not None}
    table = []
    for kernel, pairs in rows.items():
        if not pairs:
            continue
        per = {key: {"pearson": _pearson(pred, obs), "inside": _pearson(pred[1:-1], obs[1:-1]),
                     "spearman": _spearman(pred, obs),
                     "ef": float(1.0 - np.abs(pred - obs).sum() / np.abs(obs).sum()) if np.abs(obs).sum() > 0 else float("nan")}
               for key, (pred, obs) in pairs.items()}
        row = {"kernel": kernel, "n": len(per)}
        for name, col in (("pearson", "pearson"), ("inside_pearson", "inside"), ("spearman", "spearman"), ("ef", "ef")):
            row[name] = _median(v[col] for v in per.values())
        row.update(_group_medians([(t, m, v["pearson"], v["inside"]) for (t, m), v in per.items()]))
        table.append(row)
    table.sort(key=lambda r: -np.nan_to_num(r["pearson"], nan=-9))
    return table


def format_pooled(table: list[dict]) -> str:
    """The class-level (seed-pooled) leaderboard as a fixed-width text table (Chapter 6)."""
    models = [m for m in PANEL_MODELS if any(np.isfinite(r.get(f"pearson_{m}", np.nan)) for r in table)]
    width = max([34] + [len(r["kernel"]) for r in table])
    head = (f"{'kernel':{width}s} {'n':>3s} {'Pearson':>7s} {'inside':>6s} {'Spear':>6s} {'EF':>6s} | "
            + " ".join(f"{_SHORT[m]:>5s}" for m in models) + " | inside: " + " ".join(f"{_SHORT[m]:>5s}" for m in models))
    lines = [head, "-" * len(head)]
    for r in table:
        lines.append(f"{r['kernel']:{width}s} {r['n']:3d} {r['pearson']:7.2f} {r['inside_pearson']:6.2f} "
                     f"{r['spearman']:6.2f} {r['ef']:6.2f} | " + " ".join(f"{r[f'pearson_{m}']:5.2f}" for m in models)
                     + " |         " + " ".join(f"{r[f'inside_{m}']:5.2f}" for m in models))
    return "\n".join(lines)


_SHORT = {"DiffusionUNet": "UNet", "DiffusionMLP": "MLP", "Transformer": "GPT", "VAE": "VAE"}


def format_leaderboard(table: list[dict]) -> str:
    """The leaderboard as a fixed-width text table (Chapter 6)."""
    models = [m for m in PANEL_MODELS if any(f"pearson_{m}" in r for r in table)]
    # 34 columns unless a kernel's name is longer (then the table widens; no name is cut).
    width = max([34] + [len(r["kernel"]) for r in table])
    head = (f"{'kernel':{width}s} {'n':>3s} {'Pearson':>7s} {'inside':>6s} {'Spear':>6s} {'EF':>6s} {'sign':>5s} "
            f"{'PM ok':>5s} {'PM id':>5s} {'OOS':>5s} | " + " ".join(f"{_SHORT[m]:>5s}" for m in models)
            + " | inside: " + " ".join(f"{_SHORT[m]:>5s}" for m in models))
    lines = [head, "-" * len(head)]

    def opt(v):
        return "  -  " if v is None else f"{v:5.2f}"

    for r in table:
        lines.append(f"{r['kernel']:{width}s} {r['n']:3d} {r['pearson']:7.2f} {r.get('inside_pearson', np.nan):6.2f} "
                     f"{r['spearman']:6.2f} {r['ef']:6.2f} {r['sign']:5.2f} {opt(r['pm_pass'])} {opt(r.get('pm_identity'))} "
                     f"{r.get('oos_predicted', np.nan):5.2f} | " + " ".join(f"{r[f'pearson_{m}']:5.2f}" for m in models)
                     + " |         " + " ".join(f"{r.get(f'inside_{m}', np.nan):5.2f}" for m in models))
    return "\n".join(lines)
