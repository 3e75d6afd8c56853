"""Number figures, tables and exercises per chapter: "Figure 6.2", "Exercise 6.2".

The book's table of contents is not numbered (its parts would restart the count), so
Sphinx numbers every enumerable node across the whole book: the ninth exercise of the
book reads "Exercise 9" wherever it sits. This hook runs after Sphinx has assigned those
numbers and replaces each chapter's with (chapter, k), where the chapter number comes from
the file name (``book/ch06_kernel`` is Chapter 6) and k counts in reading order. Pages that
are not chapters (the introduction, the appendix) keep Sphinx's numbers.
"""

from __future__ import annotations

import re

_CHAPTER = re.compile(r"(?:^|/)ch(\d+)_[^/]*$")


def chapter_of(docname: str) -> int | None:
    """The chapter number in ``docname`` (``book/ch06_kernel`` -> 6), or None."""
    found = _CHAPTER.search(docname)
    return int(found.group(1)) if found else None


def renumber(toc_fignumbers: dict) -> list[str]:
    """Rewrite ``toc_fignumbers`` in place, per chapter; return the documents it changed."""
    changed = []
    for docname, kinds in toc_fignumbers.items():
        chapter = chapter_of(docname)
        if chapter is None:
            continue
        for kind, numbers in kinds.items():
            in_order = sorted(numbers, key=lambda node_id: numbers[node_id])
            for k, node_id in enumerate(in_order, start=1):
                if numbers[node_id] != (chapter, k):
                    numbers[node_id] = (chapter, k)
                    changed.append(docname)
    return sorted(set(changed))


def _renumber(app, env) -> list[str]:
    return renumber(env.toc_fignumbers)


def setup(app):
    # Sphinx assigns the book-wide numbers in its own env-get-updated handler (priority 500).
    app.connect("env-get-updated", _renumber, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
