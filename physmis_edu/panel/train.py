"""A cell's arrays: trained and cached, or read from the store; and its cheap proxy (Chapter 6).

The ``ci``, ``cpu`` and ``gpu`` profiles train each cell's model on curated trajectories and
cache the training data, fresh true samples and the model's samples (``.npz`` keyed by
:func:`cell_config`). The ``book`` profile reads them from the store of trained runs
(:func:`physmis_edu.zoo.load`) instead. Either way the model sees trajectories only, never ``c``.

A *proxy* (:func:`load_or_train_proxy`) is the cell's model class trained on the cell's own
training trajectories for a share of its optimiser steps, seeded from its own stream (never the
cell's seed): a *cheap proxy* of the expensive model. Torch is imported only when a model trains.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .design import PANEL_SIZES, Cell, model_config
from .store import array_digest, config_hash, sample_code_hash, save_npz

__all__ = ["PANEL_VERSION", "CellData", "ProxyData", "cell_config", "cell_sizes", "cache_path",
           "load_or_train", "proxy_seed", "proxy_config", "proxy_path", "load_or_train_proxy",
           "train_and_sample", "check_fraction"]

PANEL_VERSION = 1


@dataclass
class CellData:
    """A cell's arrays (Chapter 6).

    ``train``: the training trajectories; ``fresh``: independent true trajectories (the perfect
    model's "samples"); ``samples``: the trained model's samples; ``seconds``: training plus
    sampling time when it was made; ``cached``: whether it was read rather than trained now.
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
            self._digest = array_digest(self.train, self.fresh, self.samples)
        return self._digest


@dataclass
class ProxyData:
    """A cell's proxy samples (Chapter 6): ``samples`` ``(n_train, L, d)``, ``seconds`` of
    training plus sampling, and ``fraction``, its share of the cell's optimiser steps."""

    cell: Cell
    fraction: float
    samples: np.ndarray
    seconds: float = 0.0
    cached: bool = True

    def digest(self) -> str:
        """SHA-256 of the samples (dtype, shape and bytes), short."""
        return array_digest(self.samples)


def cell_sizes(cell: Cell) -> dict:
    """Training trajectories and model samples of a cell."""
    if cell.profile == "book":
        from ..zoo.catalog import SPECS

        spec = SPECS[f"{cell.task}.{cell.model}.s{cell.seed}"]
        return dict(n_train=spec.n_train, n_samples=spec.n_samples)
    return dict(PANEL_SIZES[cell.profile])


def cell_config(cell: Cell) -> dict:
    """Everything that determines a cell's arrays, as a JSON-able dict (Chapter 6)."""
    if cell.profile == "book":
        from ..zoo.catalog import SPECS

        spec = SPECS[f"{cell.task}.{cell.model}.s{cell.seed}"]
        return {"version": PANEL_VERSION, "profile": "book", "run": spec.name,
                "spec": spec.spec_hash()}
    return {"version": PANEL_VERSION, "task": repr(cell.make_task()), "model": cell.model,
            "model_config": model_config(cell.model, cell.profile), "sizes": cell_sizes(cell),
            "seed": cell.seed, "code": sample_code_hash()}


def cache_path(cell: Cell, cache) -> Path:
    """Where a trained cell's model samples live: ``{cache}/{task}_{model}_s{seed}_{hash}.npz``."""
    key = config_hash(cell_config(cell))
    return Path(cache) / f"{cell.task}_{cell.model}_s{cell.seed}_{key}.npz"


def _task_data(cell: Cell, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Training and fresh true trajectories of (task, seed), shared by all model classes."""
    from .design import PANEL_TASKS

    sizes = cell_sizes(cell)
    task = cell.make_task()
    config = {"version": PANEL_VERSION, "task": repr(task), "sizes": sizes, "seed": cell.seed,
              "code": sample_code_hash(("tasks",))}
    path = cache / f"data_{cell.task}_s{cell.seed}_{config_hash(config)}.npz"
    if path.exists():
        with np.load(path) as blob:
            return blob["train"], blob["fresh"]
    # Independent streams per (task, seed, purpose), reproducible on any machine.
    stream = PANEL_TASKS[cell.task].stream
    train, _ = task.sample(sizes["n_train"], rng=np.random.default_rng([cell.seed, stream, 0]))
    fresh, _ = task.sample(sizes["n_samples"], rng=np.random.default_rng([cell.seed, stream, 1]))
    save_npz(path, train=train, fresh=fresh)
    return train, fresh


def train_and_sample(model: str, config: dict, seed: int, train: np.ndarray, n_samples: int,
                     sample_stream, device=None, threads: int | None = 1):
    """Train ``model`` with ``config`` and ``seed`` on ``train`` and draw ``n_samples`` from the
    stream ``default_rng(sample_stream)`` (Chapter 6). Returns the samples and the seconds taken.

    ``threads``: torch threads while training (1 keeps parallel workers from fighting over cores).
    """
    import torch

    from ..models import MODELS

    if threads is not None:
        torch.set_num_threads(int(threads))
    start = time.perf_counter()
    net = MODELS[model](**config, seed=seed, device=device, progress=False)
    net.fit(train)
    samples = net.sample(n_samples, rng=np.random.default_rng(sample_stream))
    return samples, time.perf_counter() - start


def load_or_train(cell: Cell, cache=None, device: str | None = None,
                  threads: int | None = 1) -> CellData:
    """A cell's training data, fresh true samples and model samples (Chapter 6).

    ``book`` profile: read from the store of trained runs. Other profiles: from the cache folder
    ``cache``, or trained now and written there.
    """
    if cell.profile == "book":
        from .. import zoo

        run = zoo.load(cell.task, cell.model, cell.seed)
        return CellData(cell, run.train, run.fresh, run.samples,
                        float(run.meta["train_seconds"] + run.meta["sample_seconds"]))
    if cache is None:
        raise ValueError(f"cache must be a folder for the {cell.profile!r} profile (cells are "
                         "trained and cached there); got None")
    cache = Path(cache)
    train, fresh = _task_data(cell, cache)
    path = cache_path(cell, cache)
    if path.exists():
        with np.load(path) as blob:
            return CellData(cell, train, fresh, blob["samples"], float(blob["seconds"]))
    samples, seconds = train_and_sample(cell.model, model_config(cell.model, cell.profile),
                                        cell.seed, train, cell_sizes(cell)["n_samples"],
                                        [cell.seed, 7], device, threads)
    save_npz(path, samples=samples, seconds=np.float64(seconds))
    return CellData(cell, train, fresh, samples, seconds, cached=False)


def check_fraction(fraction) -> float:
    """A proxy's share of the cell's ``train_steps``: a number in (0, 1]."""
    fraction = float(fraction)
    if not (0.0 < fraction <= 1.0):
        raise ValueError(f"fraction must lie in (0, 1] (the share of the cell's train_steps); "
                         f"got {fraction!r}")
    return fraction


def proxy_seed(cell: Cell) -> int:
    """The proxy's model seed: drawn from its own stream ``[seed, 8]``, never the cell's seed."""
    return int(np.random.default_rng([cell.seed, 8]).integers(2**31))


def proxy_config(cell: Cell, fraction: float, train: np.ndarray | None = None) -> dict:
    """Everything that determines a cell's proxy samples, as a JSON-able dict (Chapter 6).

    The proxy is the cell's model class with ``ceil(fraction * train_steps)`` optimiser steps
    (the rest of the configuration unchanged), trained on the cell's training trajectories with
    seed :func:`proxy_seed`, and sampled ``n_train`` times from the stream ``[seed, 7, 1]``. In
    the ``book`` profile the key holds the training data's digest (``train``) and the models'
    code hash, since the store verifies the data itself.
    """
    fraction = check_fraction(fraction)
    config = model_config(cell.model, cell.profile)
    config["train_steps"] = max(1, int(np.ceil(fraction * config["train_steps"])))
    if cell.profile == "book":
        if train is None:
            raise ValueError("train must be given for a book-profile proxy (its digest keys it)")
        proxy_of = {**cell_config(cell), "train": array_digest(train),
                    "code": sample_code_hash(("models",))}
    else:
        proxy_of = cell_config(cell)
    return {"version": PANEL_VERSION, "proxy_of": proxy_of, "fraction": fraction,
            "model_config": config, "seed": proxy_seed(cell),
            "n_samples": cell_sizes(cell)["n_train"], "sample_stream": [cell.seed, 7, 1]}


def proxy_path(cell: Cell, cache, fraction: float, train: np.ndarray | None = None) -> Path:
    """Where a cell's proxy samples live: ``{cache}/proxy_{task}_{model}_s{seed}_{hash}.npz``."""
    return _proxy_file(cell, cache, proxy_config(cell, fraction, train))


def _proxy_file(cell: Cell, cache, config: dict) -> Path:
    key = config_hash(config)
    return Path(cache) / f"proxy_{cell.task}_{cell.model}_s{cell.seed}_{key}.npz"


def _training_set(cell: Cell, cache: Path) -> np.ndarray:
    if cell.profile == "book":
        from .. import zoo

        return zoo.load(cell.task, cell.model, cell.seed).train
    return _task_data(cell, cache)[0]


def load_or_train_proxy(cell: Cell, cache, fraction: float = 0.125, device: str | None = None,
                        threads: int | None = 1, train: np.ndarray | None = None) -> ProxyData:
    """A cheap proxy of a cell's model, trained on the cell's training trajectories only: its
    samples (Chapter 6), from the cache folder ``cache`` or trained now.

    ``train``: the cell's training trajectories where the caller holds them already (else they
    are read or regenerated). Neither ``c`` nor the task's recovery is used: only the training
    trajectories reach the proxy.
    """
    if cache is None:
        raise ValueError("cache must be a folder (proxies are trained and cached there); got None")
    cache = Path(cache)
    if train is None:
        train = _training_set(cell, cache)
    config = proxy_config(cell, fraction, train)
    path = _proxy_file(cell, cache, config)
    if path.exists():
        with np.load(path) as blob:
            return ProxyData(cell, config["fraction"], blob["samples"], float(blob["seconds"]))
    samples, seconds = train_and_sample(cell.model, config["model_config"], config["seed"], train,
                                        config["n_samples"], config["sample_stream"], device,
                                        threads)
    save_npz(path, samples=samples, seconds=np.float64(seconds))
    return ProxyData(cell, config["fraction"], samples, seconds, cached=False)
