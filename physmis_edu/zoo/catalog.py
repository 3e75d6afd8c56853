"""What the store of trained runs holds and how each run is made (introduced in Chapter 1).

One :class:`RunSpec` per run: the task, the model class and its hyper-parameters, the training
budget, the seeds of the data streams and the checkpoints along training at which samples are
scored (the convergence curve). Adding a run to the store means adding a spec here and running
``python -m physmis_edu.zoo build --only NAME``.

Budgets. Each class's budget sits past the point where its c-free sample checks settle on the
chaotic logistic map, judged from the convergence curve that every run records (checkpoints
along one cosine schedule); ``benchmarks/README.md`` lists the measured curves.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np

from ..tasks import (CurveToy, DoublePendulum, LogisticMap, MazeTask, Sinusoid,
                     SyllableEnvelope)
from ..tasks.base import Prior


# Prior shapes of the confound sweep (Chapter 11), on the chaotic logistic map's range [3.6, 4].
# Module-level functions, not lambdas, so that a task can be pickled to a worker process.
def peaked_density(r):
    """A bump centred in the range (standard deviation a fifth of the range), truncated."""
    return np.exp(-0.5 * ((np.asarray(r) - 3.8) / 0.08) ** 2)


def skewed_density(r):
    """A ramp rising five-fold from the periodic-window end (3.6) to the fully chaotic end (4)."""
    return 0.25 + (np.asarray(r) - 3.6) / 0.4

# Task keys of the store and how each task is constructed. A key names one fixed construction:
# changing a task's parameters means a new key, so that shipped runs stay reproducible.
TASKS = {
    "logistic-chaotic": lambda: LogisticMap(lo=3.6, hi=4.0, length=16),
    "logistic-periodic": lambda: LogisticMap(lo=2.8, hi=3.4, length=16),
    "toy": lambda: CurveToy(length=8),
    "sine": lambda: Sinusoid(length=32),
    "maze": lambda: MazeTask(maze="umaze", length=32),
    "pendulum": lambda: DoublePendulum(length=32),
    "logistic-peaked": lambda: LogisticMap(lo=3.6, hi=4.0, length=16,
                                           prior=Prior(3.6, 4.0, density=peaked_density)),
    "logistic-skewed": lambda: LogisticMap(lo=3.6, hi=4.0, length=16,
                                           prior=Prior(3.6, 4.0, density=skewed_density)),
    "speech": lambda: SyllableEnvelope(lo=3.0, hi=7.0, length=128, frame_rate=100.0),
}

# Fixed data streams per task: training set and fresh true data never depend on the model or seed,
# so every class and seed of a task sees exactly the same training trajectories.
DATA_SEEDS = {"logistic-chaotic": 1601, "logistic-periodic": 1602, "toy": 1603, "sine": 1604,
              "maze": 1605, "pendulum": 1606, "logistic-peaked": 1607, "logistic-skewed": 1608,
              "speech": 1609}


@dataclass(frozen=True)
class RunSpec:
    """One trained run of the store (Chapter 1): a task, a model class, a seed and how to train it.

    ``config`` holds the model's hyper-parameters (the training budget among them).
    ``n_train`` training trajectories and ``n_fresh`` fresh true ones are drawn from the task's
    fixed streams; ``n_samples`` are drawn from the trained model. ``milestones`` are the training
    steps at which ``n_curve`` samples are scored for the convergence curve. ``variant`` names a
    run that differs from its class's main runs (e.g. a larger training set).
    The mitigations of Chapters 9 and 10: ``representation`` (``{"name": ..., "params": ...}``, see
    :func:`physmis_edu.mitigations.representation_to_dict`) trains the same unconditional model
    in coordinates ``y = Phi(x)`` and decodes its samples; ``reweight``
    (``{"method": "ratio" | "iterative", "calibrated_on": baseline run name}``) fits it on the
    training set resampled by kernel-predicted weights; ``conditional`` fits ``p(x | c)`` and
    samples it with ``c`` drawn from the prior.
    """

    task: str
    model: str
    seed: int
    config: dict = field(hash=False)
    n_train: int = 10_000
    n_samples: int = 8_000
    n_fresh: int = 8_000
    n_curve: int = 2_000
    milestones: tuple = ()
    checkpoint: bool = False
    variant: str = ""
    plan_endpoints: bool = False
    representation: dict | None = field(default=None, hash=False)
    reweight: dict | None = field(default=None, hash=False)
    conditional: bool = False

    def __post_init__(self):
        if self.representation is not None:
            from ..mitigations import representation_from_dict

            representation_from_dict(self.representation)  # raises on a bad spec
            if self.checkpoint:
                raise ValueError("a run trained in a representation ships no checkpoint (its "
                                 "network works in y, not x); set checkpoint=False")
            if self.plan_endpoints:
                raise ValueError("a planner run (plan_endpoints=True) pins its ends in x; it "
                                 "cannot train in a representation")
            if self.conditional:
                raise ValueError("a run in a representation is unconditional (the model never "
                                 "sees c); set conditional=False")
        if self.reweight is not None:
            if not isinstance(self.reweight, dict) or set(self.reweight) != {"method",
                                                                               "calibrated_on"}:
                raise ValueError(f"reweight must be a dict with keys 'method' and "
                                 f"'calibrated_on'; got {self.reweight!r}")
            if self.reweight["method"] not in ("ratio", "iterative"):
                raise ValueError(f"reweight['method'] must be 'ratio' or 'iterative'; got "
                                 f"{self.reweight['method']!r}")
        if self.plan_endpoints and self.n_samples > self.n_fresh:
            raise ValueError(f"a planner run (plan_endpoints=True) takes its endpoints from the "
                             f"fresh data: n_samples={self.n_samples} must be <= "
                             f"n_fresh={self.n_fresh}")

    @property
    def name(self) -> str:
        variant = f"-{self.variant}" if self.variant else ""
        return f"{self.task}.{self.model}{variant}.s{self.seed}"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["milestones"] = list(self.milestones)
        out["config"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.config.items()}
        if not self.plan_endpoints:
            # Omitted when off, so that the runs made before the field existed keep their hashes.
            del out["plan_endpoints"]
        # The mitigation fields are omitted when off, for the same reason.
        for key, off in (("representation", None), ("reweight", None), ("conditional", False)):
            if out[key] == off:
                del out[key]
        return out

    def spec_hash(self) -> str:
        """A short hash of everything that decides the run (a changed spec is retrained)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# Hyper-parameters per class for the store's book-grade runs on the chaotic logistic map (L = 16).
BOOK_CONFIGS = {
    "DiffusionMLP": dict(hidden=256, layers=3, diffusion_steps=50, batch_size=256, lr=2e-3,
                         train_steps=20_000),
    "DiffusionUNet": dict(dim=24, dim_mults=(1, 2), diffusion_steps=50, batch_size=128, lr=2e-3,
                          train_steps=5_000),
    "Transformer": dict(bins=128, width=64, layers=3, heads=4, batch_size=64, lr=2e-3,
                        train_steps=4_000),
    "VAE": dict(hidden=256, layers=2, latent=8, batch_size=256, lr=1e-3, train_steps=10_000),
}
MILESTONES = {
    "DiffusionMLP": (1_500, 3_000, 6_000, 10_000, 15_000, 20_000),
    "DiffusionUNet": (625, 1_250, 2_500, 5_000),
    "Transformer": (500, 1_000, 2_000, 4_000),
    "VAE": (1_000, 2_500, 5_000, 10_000),
}
SEEDS = (0, 1, 2)
# The representations of the mitigation study's "coords" runs (Chapter 10).
STUDY_COORDINATES = {
    "logistic-chaotic": {"name": "LogisticRatio", "params": {"start_shift": 3.3}},
    "pendulum": {"name": "PendulumEnergy",
                 "params": {"m1": 1.0, "m2": 1.0, "l1": 1.0, "l2": 1.0, "g": 9.81}},
    "maze": {"name": "ArcLength", "params": {"total": True}},
}
# The search's second choice on the maze, trained because its first choice did not reduce the
# drift there (Chapter 10): a second try, not a prediction.
SECOND_COORDINATES = {"maze": {"name": "ArcLength", "params": {"total": False}}}
# A second try on the pendulum, trained because the first left one seed's interval overlapping
# a baseline seed's (Chapter 10): the energy on a logit scale over the prior's range, a
# candidate added to the search after the first runs, which the search then ranks first.
RETRY_COORDINATES = {"pendulum": {"name": "PendulumEnergy",
                                  "params": {"m1": 1.0, "m2": 1.0, "l1": 1.0, "l2": 1.0,
                                             "g": 9.81, "energy_range": [2.0, 40.0]}}}
# Larger training sets for the Transformer, which copies its training data at 10,000 trajectories.
TRANSFORMER_DATA_SIZES = (20_000, 40_000, 80_000)

# The confound sweep of Chapter 11: one factor at a time around the DiffusionMLP's book run on the
# chaotic logistic map (variant name: changes to its config and spec), 3 seeds each. Training
# length is swept at three times the budget for the classes whose long runs fit a CPU session
# (the DiffusionMLP: 14 minutes a run on a shared core; the VAE: 5; the Transformer: about
# 10); the U-Net's answer comes from its convergence curve. Wider denoisers are left to a GPU.
CONFOUND_VARIANTS = {
    "hidden64": (dict(hidden=64), {}),
    "data2k": ({}, dict(n_train=2_000)),
    "data40k": ({}, dict(n_train=40_000)),
    "diffsteps10": (dict(diffusion_steps=10), {}),
    "diffsteps200": (dict(diffusion_steps=200), {}),
}
LONG_MILESTONES = {
    "DiffusionMLP": (5_000, 10_000, 20_000, 40_000, 60_000),
    "VAE": (2_500, 5_000, 10_000, 20_000, 30_000),
    "Transformer": (1_000, 2_000, 4_000, 8_000, 12_000),
}
PRIOR_TASKS = ("logistic-peaked", "logistic-skewed")


def _confound_specs() -> list[RunSpec]:
    specs = []
    model, config = "DiffusionMLP", BOOK_CONFIGS["DiffusionMLP"]
    for long_model, milestones in LONG_MILESTONES.items():
        long_config = dict(BOOK_CONFIGS[long_model],
                           train_steps=3 * BOOK_CONFIGS[long_model]["train_steps"])
        for seed in SEEDS:
            specs.append(RunSpec("logistic-chaotic", long_model, seed, long_config,
                                 milestones=milestones, variant="long"))
    for variant, (changes, spec_changes) in CONFOUND_VARIANTS.items():
        for seed in SEEDS:
            specs.append(RunSpec("logistic-chaotic", model, seed, dict(config, **changes),
                                 milestones=MILESTONES[model], variant=variant, **spec_changes))
    for task in PRIOR_TASKS:
        for seed in SEEDS:
            specs.append(RunSpec(task, model, seed, config, milestones=MILESTONES[model]))
    return specs


def _book_specs() -> list[RunSpec]:
    specs = []
    for model, config in BOOK_CONFIGS.items():
        for seed in SEEDS:
            specs.append(RunSpec("logistic-chaotic", model, seed, config,
                                 milestones=MILESTONES[model], checkpoint=seed == 0))
    # The other core tasks of the kernel panel (Chapter 6), same budgets; no checkpoints, to keep
    # the store small.
    for task in ("logistic-periodic", "toy", "sine"):
        for model, config in BOOK_CONFIGS.items():
            for seed in SEEDS:
                specs.append(RunSpec(task, model, seed, config, milestones=MILESTONES[model]))
    # The applied tasks (Chapters 7 and 8). The maze planner is the temporal U-Net trained and
    # sampled with its ends pinned, as Diffuser's planner is; the pendulum runs two classes.
    planner = dict(BOOK_CONFIGS["DiffusionUNet"], plan_endpoints=True)
    for seed in SEEDS:
        specs.append(RunSpec("maze", "DiffusionUNet", seed, planner,
                             milestones=MILESTONES["DiffusionUNet"], plan_endpoints=True))
    for model in ("DiffusionMLP", "VAE"):
        for seed in SEEDS:
            specs.append(RunSpec("pendulum", model, seed, BOOK_CONFIGS[model],
                                 milestones=MILESTONES[model]))
    # The conditional planner of Chapter 9: the same planner with the travel distance as a
    # condition, pinned to the ends of fresh trajectory i and asked for a distance drawn from
    # the prior independently of those ends, so that some requests are shorter than any path
    # between the pins (the conflict between endpoints and distance). 4,000 samples a run.
    for seed in SEEDS:
        specs.append(RunSpec("maze", "DiffusionUNet", seed, planner,
                             milestones=MILESTONES["DiffusionUNet"], plan_endpoints=True,
                             conditional=True, variant="conditional", n_samples=4_000))
    # The mitigation study (Chapters 9 and 10): the DiffusionMLP of the chaotic logistic map and
    # of the double pendulum, baseline budget and seeds, each mitigation on its own. The
    # coordinates are those the coordinate search ranks first by predicted drift
    # (benchmarks/coordinate_search.py); reweighting calibrates its kernel on seed 0's samples.
    for task in ("logistic-chaotic", "pendulum"):
        model = "DiffusionMLP"
        base = RunSpec(task, model, 0, BOOK_CONFIGS[model]).name
        # 4,000 pendulum samples per run keep the package small (1.5 MiB a run in 16 bits);
        # the study table compares every run at the same number of samples.
        n_samples = 4_000 if task == "pendulum" else 8_000
        for seed in SEEDS:
            common = dict(milestones=MILESTONES[model], n_samples=n_samples)
            specs.append(RunSpec(task, model, seed, BOOK_CONFIGS[model], variant="coords",
                                 representation=STUDY_COORDINATES[task], **common))
            specs.append(RunSpec(task, model, seed, BOOK_CONFIGS[model], variant="reweighted",
                                 reweight=dict(method="iterative", calibrated_on=base),
                                 **common))
            specs.append(RunSpec(task, model, seed, BOOK_CONFIGS[model], variant="conditional",
                                 conditional=True, **common))
            if task in RETRY_COORDINATES:
                specs.append(RunSpec(task, model, seed, BOOK_CONFIGS[model],
                                     variant="coords-retry",
                                     representation=RETRY_COORDINATES[task], **common))
    # The coordinates on the maze (Chapter 10). A model trained in a representation cannot have
    # its ends pinned in x, so the baseline is the same class without pins: an unconditional
    # model of the demonstrations, start and goal included.
    model = "DiffusionMLP"
    for seed in SEEDS:
        common = dict(milestones=MILESTONES[model])
        specs.append(RunSpec("maze", model, seed, BOOK_CONFIGS[model], **common))
        specs.append(RunSpec("maze", model, seed, BOOK_CONFIGS[model], variant="coords",
                             representation=STUDY_COORDINATES["maze"], **common))
        specs.append(RunSpec("maze", model, seed, BOOK_CONFIGS[model], variant="coords-second",
                             representation=SECOND_COORDINATES["maze"], **common))
    # The speaking-rate vignette of Chapter 12: the reference DiffusionMLP, same budget; 4,000
    # samples of 128 frames keep a run near 1 MiB in the package.
    for seed in SEEDS:
        specs.append(RunSpec("speech", "DiffusionMLP", seed, BOOK_CONFIGS["DiffusionMLP"],
                             milestones=MILESTONES["DiffusionMLP"], n_samples=4_000))
    for n_train in TRANSFORMER_DATA_SIZES:
        specs.append(RunSpec("logistic-chaotic", "Transformer", 0, BOOK_CONFIGS["Transformer"],
                             n_train=n_train, milestones=MILESTONES["Transformer"],
                             variant=f"data{n_train // 1000}k"))
    return specs


CONFOUND_NAMES = frozenset(spec.name for spec in _confound_specs())
SPECS: dict[str, RunSpec] = {spec.name: spec for spec in _book_specs() + _confound_specs()}


def make_task(key: str):
    """The task of the store for a key (``'logistic-chaotic'``, ...), constructed as for
    training."""
    if key not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}; got {key!r}")
    return TASKS[key]()


@lru_cache(maxsize=8)
def _data_stream(task_key: str, n: int, stream: int):
    # Every run of a task shares its streams, and some tasks (the maze's curation) take seconds
    # to regenerate; callers get copies, so the cached arrays never change.
    import numpy as np

    return make_task(task_key).sample(n, rng=np.random.default_rng([DATA_SEEDS[task_key],
                                                                      stream]))


def training_data(spec: RunSpec):
    """The training trajectories and controls of a run, regenerated from the task's data stream."""
    x, c = _data_stream(spec.task, spec.n_train, 0)
    return x.copy(), c.copy()


def fresh_data(spec: RunSpec):
    """Fresh true trajectories (never trained on), the reference of the sample checks."""
    x, c = _data_stream(spec.task, spec.n_fresh, 1)
    return x.copy(), c.copy()


def endpoint_pins(spec: RunSpec, fresh, n: int):
    """The ``inpaint`` argument of a planner run's first ``n`` samples (Chapter 7), else ``None``:
    sample ``i`` starts and ends where fresh true trajectory ``i`` does
    (:func:`physmis_edu.tasks.maze.pin_endpoints`)."""
    from ..tasks.maze import pin_endpoints

    return pin_endpoints(fresh, n) if spec.plan_endpoints else None
