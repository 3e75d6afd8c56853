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

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [e["file"] for part in toc.get("parts", []) for e in part.get("chapters", [])]


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
    chapters = [d for d in _toc_files() if (ROOT / f"{d}.md").read_text().startswith("---")]
    for doc in chapters:
        assert doc in executed, f"{doc} missing from the execution table"
        assert "✅" in executed[doc][1], f"{doc} did not execute cleanly"
    print("\nchapter execution times (s): " + ", ".join(f"{d}: {t:.0f}" for d, (t, _) in executed.items()))
