"""The panel's design: its tasks, model classes, sizes and cells (introduced in Chapter 6).

A *cell* is (task, model class, seed, profile). The ``ci``, ``cpu`` and ``gpu`` profiles train
their cells (:mod:`.train`); the ``book`` profile reads the book-grade runs of the store of
trained runs (:mod:`physmis_edu.zoo`) and trains only the cheap proxies.

Adding a panel task means one entry in :data:`PANEL_TASKS` (its constructor and a data stream of
its own) and, if the task has a rule, its ``c_free_residual`` hook in its own file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .._validation import check_positive_int, check_seed

__all__ = ["PanelTask", "PANEL_TASKS", "CORE_TASKS", "APPLIED_TASKS", "PANEL_MODELS",
           "PANEL_SIZES", "PANEL_BUDGETS", "PROFILES", "Cell", "panel_cells", "make_task",
           "model_config"]


@dataclass(frozen=True)
class PanelTask:
    """A panel task (Chapter 6): how to construct it and the index of its data streams.

    ``stream`` is fixed per task and never derived from the table's order, so that a new task
    leaves every existing task's data, and hence its cache, unchanged.
    """

    make: Callable
    stream: int


def _tasks() -> dict[str, PanelTask]:
    from ..tasks import CurveToy, DoublePendulum, LogisticMap, MazeTask, Sinusoid

    # The toy is observed over 8 steps so that every model class (the U-Net halves the length
    # twice) sees a sequence; its trajectory is a repeated point.
    return {
        "logistic-chaotic": PanelTask(lambda: LogisticMap(lo=3.6, hi=4.0, length=32), 0),
        "logistic-periodic": PanelTask(lambda: LogisticMap(lo=2.8, hi=3.4, length=32), 1),
        "sine": PanelTask(lambda: Sinusoid(length=32), 2),
        "toy": PanelTask(lambda: CurveToy(length=8), 3),
        "maze": PanelTask(lambda: MazeTask(maze="umaze", length=32), 4),
        "pendulum": PanelTask(lambda: DoublePendulum(length=32), 5),
    }


PANEL_TASKS: dict[str, PanelTask] = _tasks()
# The default panel; the applied tasks (the U-maze's travel distance and the double pendulum's
# energy, 32 steps each) run on request.
CORE_TASKS = ("toy", "sine", "logistic-periodic", "logistic-chaotic")
APPLIED_TASKS = ("maze", "pendulum")

# The model classes the panel runs (their short names and costs live on the classes themselves).
PANEL_MODELS = ("DiffusionUNet", "DiffusionMLP", "Transformer", "VAE")

# Dataset sizes of the training profiles: training trajectories, model samples (= fresh true
# samples for the perfect-model control). The book profile takes its sizes from the store.
PANEL_SIZES = {
    "ci": dict(n_train=2000, n_samples=1500),
    "cpu": dict(n_train=4000, n_samples=4000),
    "gpu": dict(n_train=10000, n_samples=10000),
}
PROFILES = (*PANEL_SIZES, "book")

# Overrides of the models' own profile configs. In ``ci`` the two slow models get reduced budgets
# so that the whole panel (48 cells) trains in minutes on 2 cores; their drift is still far above
# the null, but part of it is under-training (see Chapter 6).
PANEL_BUDGETS = {
    "ci": {"DiffusionUNet": dict(train_steps=250, batch_size=128),
           "Transformer": dict(train_steps=300), "DiffusionMLP": {}, "VAE": {}},
    "cpu": {name: {} for name in PANEL_MODELS},
    "gpu": {name: {} for name in PANEL_MODELS},
}


def make_task(key: str, profile: str = "ci"):
    """The panel task for a short key (Chapter 6): ``toy``, ``sine``, ``logistic-periodic``,
    ``logistic-chaotic``, and the applied ``maze`` and ``pendulum``.

    In the ``book`` profile the task is the store's construction of it
    (:func:`physmis_edu.zoo.catalog.make_task`), which may differ in length.
    """
    if profile == "book":
        from ..zoo.catalog import make_task as store_task

        return store_task(key)
    if key not in PANEL_TASKS:
        raise ValueError(f"task key must be one of {sorted(PANEL_TASKS)}; got {key!r}")
    return PANEL_TASKS[key].make()


def model_config(model: str, profile: str) -> dict:
    """A class's hyper-parameters in a profile: the store's book-grade config in ``book``, else
    the model's profile defaults with the panel's overrides (Chapter 6)."""
    if profile == "book":
        from ..zoo.catalog import BOOK_CONFIGS

        return dict(BOOK_CONFIGS[model])
    from ..models import default_config

    return {**default_config(model, profile), **PANEL_BUDGETS[profile][model]}


@dataclass(frozen=True)
class Cell:
    """One panel cell: a task key, a model class name, a seed and a profile (Chapter 6)."""

    task: str
    model: str
    seed: int
    profile: str = "ci"

    def __post_init__(self):
        if self.model not in PANEL_MODELS:
            raise ValueError(f"model must be one of {PANEL_MODELS}; got {self.model!r}")
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}; got {self.profile!r}")
        if self.profile == "book":
            from ..zoo.catalog import SPECS

            name = f"{self.task}.{self.model}.s{self.seed}"
            if name not in SPECS:
                raise ValueError(f"the book profile reads the store, which has no run {name!r}; "
                                 "its runs: python -m physmis_edu.zoo list")
        else:
            make_task(self.task)  # validates the key
        object.__setattr__(self, "seed", check_positive_int(self.seed, "seed", minimum=0))

    @property
    def label(self) -> str:
        return f"{self.task}/{self.model}/s{self.seed}"

    def make_task(self):
        """This cell's task, constructed as for its profile."""
        return make_task(self.task, self.profile)


def panel_cells(tasks=None, models=PANEL_MODELS, seeds=(0, 1, 2),
                profile: str = "ci") -> list[Cell]:
    """Every (task, model, seed) cell of the panel (Chapter 6); ``tasks`` defaults to
    :data:`CORE_TASKS`."""
    tasks = list(CORE_TASKS) if tasks is None else list(tasks)
    seeds = [check_seed(s, f"seeds[{i}]") for i, s in enumerate(seeds)]  # 0.5 must not become 0
    for name, values in (("tasks", tasks), ("models", list(models)), ("seeds", seeds)):
        if len(set(values)) != len(values) or not values:
            raise ValueError(f"{name} must be non-empty and without repeats (a repeat gives "
                             f"duplicate cells); got {values!r}")
    return [Cell(t, m, s, profile) for t in tasks for m in models for s in seeds]
