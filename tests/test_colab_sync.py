"""The generated Colab / student notebooks must match the chapters they are made from."""

import importlib.util
import json
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("make_colab", ROOT / "tools" / "make_colab.py")
make_colab = importlib.util.module_from_spec(spec)
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
    assert make_colab._SOLUTION.sub("", text) == "Intro\n\nAfter.\n"
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
