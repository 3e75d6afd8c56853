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


FIGURE_WIDTH_LIMIT = 8.0  # inches: a figure wider than the page column is scaled down
LEGEND_POINTS_MIN = 9
_FIGSIZE = re.compile(r"figsize=\(\s*([0-9.]+)\s*,")
_LEGEND = re.compile(r"\.legend\(")


def _call_text(text: str, start: int) -> str:
    """The argument text of the call whose opening parenthesis is at ``start - 1``."""
    depth, i = 1, start
    while depth and i < len(text):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        i += 1
    return text[start:i - 1]


def figure_style_problems(text: str) -> list[str]:
    """Literal figure widths over 8 inches and legend font sizes under 9 points."""
    problems = []
    for m in _FIGSIZE.finditer(text):
        if float(m.group(1)) > FIGURE_WIDTH_LIMIT:
            line = text.count("\n", 0, m.start()) + 1
            problems.append(f"line {line}: figsize width {m.group(1)} in > "
                            f"{FIGURE_WIDTH_LIMIT:g} in")
    for m in _LEGEND.finditer(text):
        size = re.search(r"fontsize=([0-9.]+)", _call_text(text, m.end()))
        if size and float(size.group(1)) < LEGEND_POINTS_MIN:
            line = text.count("\n", 0, m.start()) + 1
            problems.append(f"line {line}: legend fontsize {size.group(1)} < "
                            f"{LEGEND_POINTS_MIN} pt")
    return problems


def test_figure_style_parser():
    assert figure_style_problems("plt.subplots(figsize=(8, 3))") == []
    assert figure_style_problems("plt.subplots(figsize=(11, 7.6))") == [
        "line 1: figsize width 11 in > 8 in"]
    assert figure_style_problems("ax.legend(handles, f(x), fontsize=8)\n") == [
        "line 1: legend fontsize 8 < 9 pt"]
    # A tick label's size is not a legend's.
    assert figure_style_problems("ax.legend(fontsize=9)\nax.set_yticks(y, t, fontsize=8)") == []


def test_figures_fit_the_page_and_legends_are_readable():
    """Every literal figure width in the chapters and the library is at most 8 inches and every
    legend with an explicit size is at least 9 points (the book's style; rendered PNGs are
    scaled to the column, so a wider figure shrinks its text)."""
    files = sorted((ROOT / "book").glob("*.md")) + sorted((ROOT / "physmis_edu").rglob("*.py"))
    problems = [f"{path.relative_to(ROOT)} {p}" for path in files
                for p in figure_style_problems(path.read_text())]
    assert not problems, "\n".join(problems)
