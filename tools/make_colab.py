"""Generate the Colab / student notebooks from the book's MyST chapters.

    python tools/make_colab.py          # write notebooks/*.ipynb and notebooks/student/*.ipynb
    python tools/make_colab.py --check  # exit 1 if any committed copy is out of date

Each chapter listed in ``_toc.yml`` that is an executable MyST notebook gets:
- ``notebooks/NAME.ipynb``: outputs empty, Colab metadata that asks for a GPU runtime only
  when the chapter can train a model (:func:`trains`), and a first cell that installs the
  library only when running inside Colab;
- ``notebooks/student/NAME.ipynb``: the same without the ``{solution}`` blocks.
Glued values (``{glue:text}`name```), which only the built book fills in, become a pointer to
the cell above that computes them.
The output is deterministic (fixed cell ids, no tool versions), so a test can
compare the committed copies with a fresh rendering.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import jupytext
import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "notebooks"

INSTALL_CELL = """\
# Colab only: install the companion library (elsewhere it is installed already).
import sys
if "google.colab" in sys.modules:
    %pip install -q "physmis_edu @ git+{url}@{branch}"
"""

# A glued value (``{glue:text}`name```) renders only in the built book; in a notebook the reader
# finds it computed by a cell above, so the role becomes a pointer to it.
_GLUE = re.compile(r"\{glue:text\}`([^`]+)`")

# A solution is a colon fence opened by {solution}; it ends at the matching closing fence.
_SOLUTION = re.compile(r"^(?P<fence>:{3,})\{solution\}.*?^(?P=fence)\s*$\n?", re.S | re.M)


def chapters() -> list[Path]:
    """Executable chapters in ``_toc.yml`` order (pages without a jupytext header are skipped)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [entry["file"] for entry in part.get("chapters", [])]
    paths = [ROOT / f"{f}.md" for f in files]
    return [p for p in paths if p.exists() and _is_notebook(p.read_text())]


def _is_notebook(text: str) -> bool:
    """A MyST notebook starts with a YAML header that has a ``jupytext`` key."""
    return text.startswith("---") and "jupytext:" in text.split("---", 2)[1]


def _repository() -> tuple[str, str]:
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = cfg.get("repository", {})
    return repo["url"].rstrip("/"), repo.get("branch", "main")


# A chapter trains when one of its code cells fits a model or builds store runs.
_TRAINS = re.compile(r"\.fit\(|\bbuild\(")


def trains(nb) -> bool:
    """Whether a chapter's code can train a model (and so should ask Colab for a GPU)."""
    return any(c.cell_type == "code" and _TRAINS.search(c.source) for c in nb.cells)


def render(path: Path, student: bool = False) -> str:
    """The ``.ipynb`` text for one chapter."""
    nb = jupytext.read(path)
    gpu = trains(nb)
    url, branch = _repository()
    cells = [nbformat.v4.new_code_cell(INSTALL_CELL.format(url=url, branch=branch))]
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = _GLUE.sub(r"`\1` (computed above)", cell.source)
        if student and cell.cell_type == "markdown":
            cell.source = _SOLUTION.sub("", cell.source)
        cells.append(cell)
    for i, cell in enumerate(cells):
        cell.id = f"cell-{i:03d}"
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("jupytext", None)
    nb.cells = cells
    colab = {"provenance": [], "toc_visible": True}
    nb.metadata = {
        "colab": dict(colab, gpuType="T4") if gpu else colab,
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    if gpu:
        nb.metadata["accelerator"] = "GPU"
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nbformat.writes(nb) + "\n"


def targets() -> dict[Path, str]:
    """Every generated file and its expected content."""
    out = {}
    for path in chapters():
        out[OUT / f"{path.stem}.ipynb"] = render(path)
        out[OUT / "student" / f"{path.stem}.ipynb"] = render(path, student=True)
    return out


def stale() -> list[Path]:
    """Generated files that are missing, out of date, or left over from a removed chapter."""
    expected = targets()
    bad = [p for p, text in expected.items() if not p.exists() or p.read_text() != text]
    bad += [p for p in OUT.rglob("*.ipynb") if p not in expected]
    return sorted(bad)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="only report stale copies; exit 1 if any")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale()
        for p in bad:
            print(f"out of date: {p.relative_to(ROOT)}")
        if bad:
            print("run: python tools/make_colab.py")
        return 1 if bad else 0
    expected = targets()
    for p in OUT.rglob("*.ipynb"):
        if p not in expected:
            p.unlink()
    for p, text in expected.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    print(f"wrote {len(expected)} notebooks under {OUT.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
