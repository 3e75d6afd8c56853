"""Build the whole book, executing every chapter from a clean state (runs after the library tests).

Any cell that raises, and any Sphinx warning, fails the build (``-W``, ``raise_on_error``).
The chapters run in the ``ci`` profile unless ``PHYSMIS_PROFILE`` says otherwise.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# Printed lines longer than this are cut off at the right edge of a book page.
PAGE_WIDTH = 88


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [e["file"] for part in toc.get("parts", []) for e in part.get("chapters", [])]


def clipped_output_lines(notebook: Path, width: int = PAGE_WIDTH) -> list[str]:
    """The plain-text output lines of an executed notebook longer than ``width`` characters.

    Only text the page shows as text counts: printed streams and a cell's plain value. An
    output that also has a rich form (an image, HTML, Markdown, a glued value) is shown in
    that form, so its plain-text fallback is never on the page.
    """
    rich = ("image/", "text/html", "text/markdown", "application/")
    long = []
    for cell in nbformat.read(notebook, as_version=4).cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.output_type == "stream" and output.name == "stderr":
                continue  # _config.yml's stderr_output: remove-warn keeps it off the page
            if output.output_type == "stream":
                text = output.text
            elif "data" in output and not any(k.startswith(rich) for k in output.data):
                text = output.data.get("text/plain", "")
            else:
                continue
            long += [line for line in text.splitlines() if len(line) > width]
    return long


def explorers(html: str) -> list[int]:
    """The number of frames of each frame-player explorer on a built page.

    An explorer (``plotting.frame_player``) is matplotlib's JavaScript player: its frames are
    PNGs inside the page, and a range slider is linked to the player by ``oninput``, so it
    works on the static page. A player counts only if all its frames are present and its
    slider drives it.
    """
    counts = []
    for anim_id, n in re.findall(r'var slider_id = "_anim_slider(\w+)";.*?'
                                 r"var frames = new Array\((\d+)\);", html, re.S):
        n = int(n)
        linked = re.search(rf'id="_anim_slider{anim_id}" type="range"'
                           rf'[^>]*?oninput="anim{anim_id}\.set_frame', html, re.S)
        frames = len(re.findall(r'frames\[\d+\] = "data:image/png;base64,', html))
        if linked and frames >= n and f"anim{anim_id} = new Animation(frames" in html:
            counts.append(n)
    return counts


def _jupyter_book() -> str:
    """The ``jupyter-book`` script of this interpreter's environment (the package has no ``__main__``)."""
    beside = Path(sys.executable).with_name("jupyter-book")
    found = str(beside) if beside.exists() else shutil.which("jupyter-book")
    assert found, "jupyter-book is not installed: pip install -e '.[book]'"
    return found


@pytest.mark.book
def test_book_builds_and_every_chapter_executes(tmp_path):
    env = dict(os.environ, PHYSMIS_PROFILE=os.environ.get("PHYSMIS_PROFILE", "ci"), PYTHONUNBUFFERED="1")
    cmd = [_jupyter_book(), "build", str(ROOT), "--path-output", str(tmp_path),
           "-W", "--keep-going"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"book build failed:\n{log[-8000:]}"

    html = tmp_path / "_build" / "html"
    for doc in _toc_files():
        assert (html / f"{doc}.html").exists(), f"{doc} was not rendered"
    table = (html / "book" / "execution.html").read_text()
    executed = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        if len(cells) == 5:
            doc, _, _, seconds, status = cells
            executed[doc] = (float(seconds), status)
    notebooks = [d for d in _toc_files() if (ROOT / f"{d}.md").read_text().startswith("---")]
    for doc in notebooks:
        assert doc in executed, f"{doc} missing from the execution table"
        assert "✅" in executed[doc][1], f"{doc} did not execute cleanly"
    # Numbered chapters (book/chNN_*.md) follow the chapter template; appendix pages need not.
    chapters = [d for d in notebooks if re.search(r"/ch\d+_", d)]
    for doc in chapters:
        page = (html / f"{doc}.html").read_text()
        assert any(n >= 2 for n in explorers(page)), f"{doc} has no working explorer"
        number = int(re.search(r"ch(\d+)_", doc).group(1))
        titles = re.findall(r'class="caption-number">Exercise (\d+)(?:\.(\d+))?', page)
        assert titles, f"{doc} has no exercises"
        wrong = sorted({f"{a}.{b}" if b else a for a, b in titles if int(a) != number or not b})
        assert not wrong, f"{doc}: exercises numbered {wrong}, not {number}.k"
        # A reference already reads "Exercise 6.2"; prose that says "exercise" before it
        # would print the word twice.
        twice = re.search(r"[Ee]xercise\s*(<[^>]+>\s*)+Exercise \d", page)
        assert not twice, f"{doc}: a reference reads 'exercise Exercise'"
    executed_dir = tmp_path / "_build" / "jupyter_execute"
    clipped = {doc: clipped_output_lines(executed_dir / f"{doc}.ipynb") for doc in notebooks}
    report = "\n".join(f"{doc}: {len(lines)} lines, first: {lines[0]!r}"
                        for doc, lines in clipped.items() if lines)
    assert not report, f"printed lines longer than {PAGE_WIDTH} characters:\n{report}"
    print("\nchapter execution times (s): " + ", ".join(f"{d}: {t:.0f}" for d, (t, _) in executed.items()))


def test_figures_tables_and_exercises_are_numbered_per_chapter():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "chapter_numbers", ROOT / "book" / "_ext" / "chapter_numbers.py")
    numbers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(numbers)
    # What Sphinx assigns without a numbered table of contents: one count for the book.
    book_wide = {"book/intro": {"figure": {"fig-overview": (1,)}},
                 "book/ch02_toy_system": {"exercise": {"b": (5,), "a": (4,)}},
                 "book/ch06_kernel": {"exercise": {"c": (9,)}, "figure": {"f": (2,)}}}
    changed = numbers.renumber(book_wide)
    assert book_wide["book/ch02_toy_system"]["exercise"] == {"a": (2, 1), "b": (2, 2)}
    assert book_wide["book/ch06_kernel"] == {"exercise": {"c": (6, 1)},
                                             "figure": {"f": (6, 1)}}
    assert book_wide["book/intro"]["figure"] == {"fig-overview": (1,)}
    assert changed == ["book/ch02_toy_system", "book/ch06_kernel"]
    assert numbers.renumber(book_wide) == []


@pytest.mark.book
def test_course_edition_leaves_every_solution_out_of_the_html(tmp_path):
    """PHYSMIS_EDITION=course: the same pages, no solution (built without executing, since
    which blocks appear does not depend on the outputs)."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    local = config["sphinx"]["local_extensions"]
    config["sphinx"]["local_extensions"] = {k: str(ROOT / v) for k, v in local.items()}
    config["bibtex_bibfiles"] = [str(ROOT / b) for b in config["bibtex_bibfiles"]]
    config_path = tmp_path / "course.yml"
    config_path.write_text(yaml.safe_dump(config))
    env = dict(os.environ, PHYSMIS_EDITION="course")
    proc = subprocess.run([_jupyter_book(), "build", str(ROOT), "--config", str(config_path),
                           "--path-output", str(tmp_path / "course")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"course build failed:\n{(proc.stdout + proc.stderr)[-4000:]}"
    html = tmp_path / "course" / "_build" / "html"
    for doc in _toc_files():
        if not re.search(r"/ch\d+_", doc):
            continue
        page = (html / f"{doc}.html").read_text()
        assert 'class="exercise' in page, f"{doc}: the exercises are missing too"
        assert 'class="solution' not in page, f"{doc}: a solution is in the course edition"
        # The words a solution opens with must not be anywhere on the page either.
        source = (ROOT / f"{doc}.md").read_text()
        for body in re.findall(r":::\{solution\}[^\n]*\n(?::[^\n]*\n)*(.*?)\n", source):
            words = re.sub(r"[`*${}\\\\]", "", body).strip()[:40]
            if len(words) > 20:
                assert words not in re.sub(r"<[^>]+>", "", page), f"{doc}: '{words}' shown"
