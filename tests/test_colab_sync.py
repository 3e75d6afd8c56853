"""The generated Colab / student notebooks must match the chapters they are made from."""

import importlib.util
import json
import re
import sys
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("make_colab", ROOT / "tools" / "make_colab.py")
make_colab = importlib.util.module_from_spec(spec)
# Registered before it runs, as importlib's recipe does: its dataclasses look the module up.
sys.modules[spec.name] = make_colab
spec.loader.exec_module(make_colab)


def test_every_chapter_has_an_up_to_date_copy():
    stale = make_colab.stale()
    assert not stale, f"stale notebooks {[str(p.relative_to(ROOT)) for p in stale]}; run: python tools/make_colab.py"
    assert make_colab.chapters(), "no executable chapter found in _toc.yml"


def test_copies_are_colab_ready_and_empty():
    for chapter in make_colab.chapters():
        nb = json.loads((ROOT / "notebooks" / f"{chapter.stem}.ipynb").read_text())
        # Only chapters that can train ask Colab for a GPU runtime.
        wants_gpu = make_colab.trains(jupytext.read(chapter))
        assert (nb["metadata"].get("accelerator") == "GPU") == wants_gpu, chapter.stem
        first = "".join(nb["cells"][0]["source"])
        assert "google.colab" in first and "pip install" in first
        assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")


def test_student_copies_drop_solutions():
    text = "Intro\n\n:::{solution} ex-1\n:label: sol-1\nThe answer.\n:::\n\nAfter.\n"
    cells = make_colab.convert(text, "book/ch01_x", make_colab.book(), student=True)
    assert [(c.kind, c.source) for c in cells] == [("markdown", "Intro\n\nAfter.")]
    for chapter in make_colab.chapters():
        student = (ROOT / "notebooks" / "student" / f"{chapter.stem}.ipynb").read_text()
        assert "{solution}" not in student


def test_numpy_only_chapters_ask_for_no_gpu_and_training_chapters_do():
    gpu = {p.stem: make_colab.trains(jupytext.read(p)) for p in make_colab.chapters()}
    assert not any(v for k, v in gpu.items() if k.startswith(("ch02", "ch03", "ch04")))
    assert gpu[next(k for k in gpu if k.startswith("ch05"))]


class _FakeShell:
    """Records the line magics a cell runs, as IPython's shell would execute them."""

    def __init__(self):
        self.magics = []

    def run_line_magic(self, name, line):
        self.magics.append((name, line))


def _run_install_cell(monkeypatch, in_colab: bool):
    import sys
    import types

    from IPython.core.inputtransformer2 import TransformerManager

    if in_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    chapter = make_colab.chapters()[0]
    nb = json.loads((ROOT / "notebooks" / f"{chapter.stem}.ipynb").read_text())
    code = TransformerManager().transform_cell("".join(nb["cells"][0]["source"]))
    shell = _FakeShell()
    exec(code, {"get_ipython": lambda: shell})
    return shell.magics


def test_install_cell_installs_the_configured_repository_only_inside_colab(monkeypatch):
    url, branch = make_colab._repository()
    magics = _run_install_cell(monkeypatch, in_colab=True)
    assert magics == [("pip", f'install -q "physmis_edu @ git+{url}@{branch}"')]
    assert _run_install_cell(monkeypatch, in_colab=False) == []


# --- the Markdown of the generated notebooks is plain Markdown, not MyST ---

# What MyST writes and Colab would show verbatim: roles, directive fences, ``(label)=`` targets.
_ROLE = re.compile(r"\{(cite|ref|doc|numref|term|glue:text|glue)[^}]*\}`")
_TARGET = re.compile(r"^\([^)\s]+\)=\s*$", re.M)
# Read straight from a chapter, independently of the generator's parser.
_EXERCISE = re.compile(r"^:{3,}\{exercise\}", re.M)
_SOLUTION = re.compile(r"^(?P<fence>:{3,})\{solution\}.*?^(?P=fence)\s*$", re.S | re.M)
_PYTHON = re.compile(r"^```python\n(.*?)^```\s*$", re.S | re.M)
_HEADING = re.compile(r"^\*\*(Exercise|Solution) (\d+)\.(\d+)\b")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """Both editions regenerated from the chapters as they are now, in a temporary folder."""
    out = tmp_path_factory.mktemp("notebooks")
    make_colab.write(out)
    return out


def _editions(fresh):
    """``(edition, chapter, notebook)`` for every chapter, public edition and student edition."""
    for edition, folder in (("public", fresh), ("student", fresh / "student")):
        for chapter in make_colab.chapters():
            yield edition, chapter, json.loads((folder / f"{chapter.stem}.ipynb").read_text())


def _source(cell) -> str:
    return "".join(cell["source"])


def _tags(cell) -> list:
    return cell["metadata"].get("tags", [])


def test_no_myst_syntax_survives_in_markdown_cells(fresh):
    for edition, chapter, nb in _editions(fresh):
        for i, cell in enumerate(nb["cells"]):
            if cell["cell_type"] != "markdown":
                continue
            text = _source(cell)
            where = f"{edition} {chapter.stem} cell {i}"
            assert not _ROLE.search(text), f"{where}: MyST role {_ROLE.search(text)[0]!r}"
            assert ":::{" not in text and "```{" not in text, f"{where}: MyST directive fence"
            assert not _TARGET.search(text), f"{where}: MyST target {_TARGET.search(text)[0]!r}"


def test_exercises_are_numbered_per_chapter(fresh):
    for edition, chapter, nb in _editions(fresh):
        found = re.match(r"ch(\d+)", chapter.stem)
        if not found:  # an appendix page has no chapter number, so no exercises
            assert not _EXERCISE.findall(chapter.read_text()), chapter.stem
            continue
        n = int(found[1])
        headings = [_HEADING.match(_source(c)) for c in nb["cells"] if c["cell_type"] == "markdown"]
        numbers = [(int(h[2]), int(h[3])) for h in headings if h and h[1] == "Exercise"]
        expected = len(_EXERCISE.findall(chapter.read_text()))
        assert numbers == [(n, k) for k in range(1, expected + 1)], f"{edition} {chapter.stem}"


def test_solution_code_is_tagged_in_public_and_absent_in_student_copies(fresh):
    for edition, chapter, nb in _editions(fresh):
        text = chapter.read_text()
        solution_code = [code.strip("\n") for block in _SOLUTION.finditer(text)
                         for code in _PYTHON.findall(block[0])]
        tagged = [c for c in nb["cells"] if "solution" in _tags(c)]
        code = [_source(c) for c in tagged if c["cell_type"] == "code"]
        chapter_code = [c for c in jupytext.read(chapter).cells if c.cell_type == "code"]
        exercise = ("exercise-stub", "answer")
        untagged_code = [c for c in nb["cells"] if c["cell_type"] == "code" and c not in tagged
                         and not any(t in _tags(c) for t in exercise)]
        # The install cell and the chapter's own code cells run untagged in both editions
        # (exercise stubs and answer cells are tested below).
        assert len(untagged_code) == 1 + len(chapter_code), f"{edition} {chapter.stem}"
        if edition == "student":
            assert not tagged, f"student {chapter.stem}: solution cells left in"
            assert not any(_HEADING.match(_source(c)) and "Solution" in _source(c)
                           for c in nb["cells"]), chapter.stem
        else:
            assert code == solution_code, f"public {chapter.stem}: solution code cells differ"
            # Each solution is headed by the number of the exercise it solves.
            headings = [_HEADING.match(_source(c)) for c in tagged]
            solved = [(int(h[2]), int(h[3])) for h in headings if h and h[1] == "Solution"]
            exercises = [(int(h[2]), int(h[3])) for h in map(_HEADING.match, map(_source, nb["cells"]))
                         if h and h[1] == "Exercise"]
            assert len(solved) == len(_SOLUTION.findall(text)), chapter.stem
            assert set(solved) <= set(exercises), f"public {chapter.stem}: {solved} vs {exercises}"


def test_citations_read_author_year_and_link_to_the_bibliography():
    book = make_colab.book()
    text = "As shown {cite}`ho2020ddpm` {cite}`kingma2014vae,may1976simple`."
    (cell,) = make_colab.convert(text, "book/ch05_x", book)
    bib = f"{make_colab.BOOK_URL}book/bibliography.html"
    assert cell.source == (f"As shown ([Ho et al., 2020]({bib}); [Kingma and Welling, 2014]({bib}); "
                           f"[May, 1976]({bib})).")
    assert make_colab.bibliography()["villani2009optimal"] == ("Villani", "2009")


def test_references_admonitions_and_glue_become_markdown():
    book = make_colab.book()
    text = ("See {ref}`ch02-ex-scaling`, {term}`the null <Finite-sample null>` and "
            "{glue:text}`ch01_tv`.\n\n:::{note}\nMind the gap.\n:::\n")
    (cell,) = make_colab.convert(text, "book/ch03_conditioning", book)
    url = make_colab.BOOK_URL
    assert cell.source == (
        f"See [Exercise 2.2]({url}book/ch02_toy_system.html#ch02-ex-scaling), "
        f"[the null]({url}book/glossary.html#term-Finite-sample-null) and `ch01_tv`."
        "\n\n> **Note.** Mind the gap."
    )


# --- code exercises: stubs in both editions, answer cells in the student edition ---

_EXERCISE_BLOCK = re.compile(r"^(?P<fence>:{3,})\{exercise\}.*?^(?P=fence)\s*$", re.S | re.M)


def test_exercise_code_becomes_stub_cells_and_student_copies_get_answer_cells(fresh):
    for edition, chapter, nb in _editions(fresh):
        where = f"{edition} {chapter.stem}"
        blocks = [block[0] for block in _EXERCISE_BLOCK.finditer(chapter.read_text())]
        stubs = [code.strip("\n") for block in blocks for code in _PYTHON.findall(block)]
        tagged = [c for c in nb["cells"] if "exercise-stub" in _tags(c)]
        assert all(c["cell_type"] == "code" for c in tagged), where
        assert [_source(c) for c in tagged] == stubs, f"{where}: exercise-stub cells differ"
        answers = [c for c in nb["cells"] if "answer" in _tags(c)]
        assert all(c["cell_type"] == "code" and not _source(c) for c in answers), where
        without_stub = sum(1 for block in blocks if not _PYTHON.search(block))
        assert len(answers) == (without_stub if edition == "student" else 0), where
        if edition == "student":
            # Each answer cell follows its exercise's text, before the next exercise starts.
            for i, cell in enumerate(nb["cells"]):
                if "answer" in _tags(cell):
                    assert "exercise" in _tags(nb["cells"][i - 1]), f"{where} cell {i}"


def test_student_notebooks_keep_stubs_and_drop_solutions():
    stubs = 0
    for chapter in make_colab.chapters():
        nb = json.loads((ROOT / "notebooks" / "student" / f"{chapter.stem}.ipynb").read_text())
        assert not any("solution" in _tags(c) for c in nb["cells"]), chapter.stem
        stubs += sum("exercise-stub" in _tags(c) for c in nb["cells"])
        if chapter.stem.startswith(("ch02", "ch03", "ch04")):
            assert any("exercise-stub" in _tags(c) for c in nb["cells"]), chapter.stem
    assert stubs >= 6


def test_convert_tags_stubs_and_adds_answer_cells():
    book = make_colab.book()
    text = (":::{exercise}\n:label: ex-a\nWrite f.\n\n```python\ndef f():\n"
            "    raise NotImplementedError\n```\n:::\n\n:::{exercise}\n:label: ex-b\n"
            "Explain.\n:::\n")
    for student in (False, True):
        cells = make_colab.convert(text, "book/ch09_x", book, student=student)
        kinds = [(c.kind, c.tags) for c in cells]
        expected = [("markdown", ("exercise",)), ("code", ("exercise-stub",)),
                    ("markdown", ("exercise",))]
        assert kinds == expected + ([("code", ("answer",))] if student else [])
        assert cells[1].source == "def f():\n    raise NotImplementedError"
