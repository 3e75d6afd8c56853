"""Code hygiene: ruff passes on the code, and the chapters' code lines stay short.

The ruff rules (pyflakes, pycodestyle errors and warnings, 99-character library lines) are in
``pyproject.toml`` under ``[tool.ruff]``. Chapter code is read in a narrow notebook column, so
its lines are held to 88 characters: every ``{code-cell}`` and every fenced ``python`` block
(the exercises' solutions) of ``book/*.md``.
"""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINTED = ["physmis_edu", "benchmarks", "tools", "tests"]
CHAPTER_LINE_LIMIT = 88

# A code fence opens with ```{code-cell} ... or ```python; it closes with a bare ``` line.
_OPEN = re.compile(r"^\s*(`{3,})(\{code-cell\}|python\b)")
# A code cell may start with options (``:tags: [...]``) or a ``---`` YAML block: not code.
_OPTION = re.compile(r"^\s*:[\w-]+:")


def test_ruff_passes():
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed: pip install -e '.[test]' (or pip install ruff)")
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", *LINTED],
        cwd=ROOT, capture_output=True, text=True,
    )
    if proc.returncode != 0:
        pytest.fail(f"ruff check {' '.join(LINTED)} failed:\n{proc.stdout}{proc.stderr}",
                    pytrace=False)


def chapter_code_lines(text: str):
    """``(line number, line)`` of every code line in a chapter's code cells and python blocks."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opened = _OPEN.match(lines[i])
        i += 1
        if not opened:
            continue
        fence = opened.group(1)
        is_cell = opened.group(2) == "{code-cell}"
        if is_cell and i < len(lines) and lines[i].strip() == "---":  # YAML options block
            i += 1
            while i < len(lines) and lines[i].strip() != "---":
                i += 1
            i += 1
        while is_cell and i < len(lines) and _OPTION.match(lines[i]):
            i += 1
        while i < len(lines) and lines[i].strip() != fence:
            yield i + 1, lines[i]
            i += 1
        i += 1


def test_chapter_fence_parser():
    text = (
        "Prose line that is long enough to be ignored entirely by the checker, "
        "whatever it says.\n"
        "```{code-cell} ipython3\n:tags: [hide-input]\nx = 1\n```\n"
        ":::{solution} ex\n```python\ny = 2\n```\n:::\n```bash\nnot python\n```\n"
        "```{code-cell} ipython3\n---\ntags: [remove-output]\n---\nz = 3\n```\n"
    )
    assert list(chapter_code_lines(text)) == [(4, "x = 1"), (8, "y = 2"), (18, "z = 3")]


def test_chapter_code_lines_fit_in_88_characters():
    chapters = sorted((ROOT / "book").glob("*.md"))
    assert chapters, "no chapter found under book/"
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {len(line)}"
        for path in chapters
        for number, line in chapter_code_lines(path.read_text(encoding="utf-8"))
        if len(line) > CHAPTER_LINE_LIMIT
    ]
    if offenders:
        pytest.fail(f"{len(offenders)} chapter code lines are longer than {CHAPTER_LINE_LIMIT} "
                    "characters (file:line: length):\n" + "\n".join(offenders), pytrace=False)
