"""Build one of the book's editions, chosen by the ``PHYSMIS_EDITION`` environment variable.

- ``public`` (the default): the online book, each solution in a dropdown under its exercise;
- ``course``: the same pages with every ``{solution}`` left out of the HTML, for a course
  whose students should not see them (sphinx-exercise's ``hide_solutions``).

    PHYSMIS_EDITION=course jupyter-book build . --path-output _build/course

The notebooks of ``notebooks/student/`` are the matching edition for Colab and Jupyter
(``tools/make_colab.py``); the instructors' page of the book lists every edition's command.
"""

from __future__ import annotations

import os

EDITIONS = {"public": False, "course": True}  # edition -> are solutions hidden?


def edition() -> str:
    """The edition named by ``PHYSMIS_EDITION`` (``public`` when unset), or ``ValueError``."""
    name = os.environ.get("PHYSMIS_EDITION", "").strip() or "public"
    if name not in EDITIONS:
        raise ValueError(f"PHYSMIS_EDITION must be one of {sorted(EDITIONS)}; got {name!r}")
    return name


def _choose(app, config) -> None:
    config.hide_solutions = EDITIONS[edition()]


def setup(app):
    app.connect("config-inited", _choose)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
