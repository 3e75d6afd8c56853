"""Shared test set-up: library tests first, the book build last; one torch thread per process."""

import os

os.environ.setdefault("PHYSMIS_THREADS", "1")


def pytest_collection_modifyitems(config, items):
    # Library tests fail fast; the book build (minutes) runs after them.
    items.sort(key=lambda item: item.get_closest_marker("book") is not None)
