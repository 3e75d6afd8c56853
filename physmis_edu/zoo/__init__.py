"""The store of trained runs: book-grade models trained once and shipped (introduced in Chapter 1).

The book's analysis runs on models trained to book strength by a script and shipped with the
library as package data, so a reader sees trained models, not models trained for seconds::

    from physmis_edu import zoo
    zoo.entries()                                   # names of the shipped runs
    run = zoo.load("logistic-chaotic", "DiffusionMLP", seed=0)
    run.samples, run.train, run.meta, run.checks, run.curve, run.model()

Build or extend it with ``python -m physmis_edu.zoo build [--only PATTERN] [--jobs N]``.
"""

from .catalog import SPECS, TASKS, RunSpec, make_task
from .checks import sample_checks
from .store import Run, ZooFileError, entries, load

__all__ = ["SPECS", "TASKS", "RunSpec", "make_task", "sample_checks", "Run", "ZooFileError",
           "entries", "load"]
