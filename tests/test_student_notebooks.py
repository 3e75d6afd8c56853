"""Execute every student notebook as Colab would: outside the repository, against a
non-editable install of the package (runs with the book build, after the library tests).

The package is built and installed into a fresh virtual environment that sees this
interpreter's other packages (torch, jupyter) but not the repository's source tree, so a
chapter that reads a file the package does not ship fails here. The notebooks run in the
``ci`` profile from a folder outside the repository. The only error allowed is the
``NotImplementedError`` of an exercise stub nobody has filled in.
"""

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDENT = ROOT / "notebooks" / "student"
KERNEL = "physmis-student"


def _install(tmp: Path) -> dict:
    """A venv with a non-editable install of the package and a kernel that uses it."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--disable-pip-version-check", str(ROOT)],
                   check=True, cwd=tmp)
    prefix = tmp / "kernels"
    subprocess.run([str(python), "-m", "ipykernel", "install", "--prefix", str(prefix),
                    "--name", KERNEL], check=True, capture_output=True)
    env = dict(os.environ, PHYSMIS_PROFILE="ci", JUPYTER_PATH=str(prefix / "share" / "jupyter"),
               PYTHONUNBUFFERED="1")
    env.pop("PYTHONPATH", None)
    where = subprocess.run([str(python), "-c", "import physmis_edu; print(physmis_edu.__file__)"],
                           check=True, capture_output=True, text=True, env=env, cwd=tmp)
    assert str(ROOT) not in where.stdout, f"the kernel imports the source tree: {where.stdout}"
    return env


def _errors(nb) -> list[tuple[list, str, str]]:
    """(tags, exception name, message) of every cell that raised."""
    found = []
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.output_type == "error":
                found.append((cell.metadata.get("tags", []), output.ename, output.evalue))
    return found


def run_outside(notebooks: list[Path], tmp: Path) -> dict:
    """Execute ``notebooks`` outside the repository against a non-editable install; return
    {name: what went wrong} for each notebook with an error other than a stub's."""
    from nbclient import NotebookClient

    env = _install(tmp)
    work = tmp / "work"
    work.mkdir()
    saved = dict(os.environ)
    os.environ.update(env)  # the kernel inherits the client's environment
    try:
        problems = {}
        for path in notebooks:
            nb = nbformat.read(path, as_version=4)
            client = NotebookClient(nb, timeout=900, kernel_name=KERNEL, allow_errors=True,
                                    resources={"metadata": {"path": str(work)}})
            client.execute()
            stubs = sum("exercise-stub" in c.metadata.get("tags", []) for c in nb.cells)
            errors = _errors(nb)
            unexpected = [e for e in errors
                          if not ("exercise-stub" in e[0] and e[1] == "NotImplementedError")]
            # A solution's check prints its feedback; one that is off is a broken solution.
            off = [c.source[:60] for c in nb.cells if c.cell_type == "code"
                   and any("checks are off" in str(o.get("data", {}).get("text/plain", ""))
                           for o in c.get("outputs", []))]
            if unexpected or off or len(errors) != stubs:
                problems[path.name] = (unexpected or off
                                       or f"{len(errors)} errors for {stubs} stubs")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return problems


@pytest.mark.book
def test_student_notebooks_run_outside_the_repository(tmp_path):
    notebooks = sorted(STUDENT.glob("*.ipynb"))
    assert notebooks, "no student notebooks: run python tools/make_colab.py"
    problems = run_outside(notebooks, tmp_path)
    assert not problems, f"student notebooks failed outside the repository: {problems}"
