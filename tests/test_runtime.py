import subprocess
import sys

import numpy as np
import pytest

import physmis_edu
from physmis_edu import runtime


def test_setup_reports_and_picks(capsys):
    rt = physmis_edu.setup(profile="ci", device="cpu", seed=3)
    line = capsys.readouterr().out
    assert "device cpu" in line and "profile ci" in line and physmis_edu.__version__ in line
    assert rt.pick(ci="a", cpu="b", gpu="c") == "a"
    assert not rt.on_gpu


@pytest.mark.parametrize("kwargs, word", [({"profile": "fast"}, "profile"), ({"device": "tpu"}, "device")])
def test_setup_rejects_unknown_names(kwargs, word):
    with pytest.raises(ValueError, match=word) as err:
        physmis_edu.setup(verbose=False, **kwargs)
    assert "cpu" in str(err.value)  # the message lists the allowed values


def test_profile_from_environment(monkeypatch):
    monkeypatch.delenv("PHYSMIS_PROFILE", raising=False)
    monkeypatch.setenv("CI", "true")
    assert runtime.resolve_profile() == "ci"
    monkeypatch.setenv("PHYSMIS_PROFILE", "gpu")
    assert runtime.resolve_profile() == "gpu"
    monkeypatch.setenv("PHYSMIS_PROFILE", "huge")
    with pytest.raises(ValueError, match="profile"):
        runtime.resolve_profile()
    monkeypatch.delenv("PHYSMIS_PROFILE")
    monkeypatch.delenv("CI")
    assert runtime.resolve_profile(device="cpu") == "cpu"
    assert runtime.resolve_profile(device="cuda:0") == "gpu"


def test_device_environment_forces_cpu(monkeypatch):
    monkeypatch.setenv("PHYSMIS_DEVICE", "cpu")
    assert str(runtime.resolve_device()) == "cpu"
    monkeypatch.setenv("PHYSMIS_DEVICE", "gpu0")
    with pytest.raises(ValueError, match="device"):
        runtime.resolve_device()


def test_seed_everything_is_deterministic():
    import torch

    a = runtime.seed_everything(7).random(3), torch.rand(3)
    b = runtime.seed_everything(7).random(3), torch.rand(3)
    assert np.array_equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="seed"):
        runtime.seed_everything(-1)


def _imported_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout
    return {name.split(".")[0] for name in out.split()}


def test_import_is_light():
    # `import physmis_edu` must not pull in torch; no module may pull in book tooling or the network stack.
    assert "torch" not in _imported_after("import physmis_edu")
    loaded = _imported_after("import physmis_edu, physmis_edu.tasks, physmis_edu.runtime")
    assert not loaded & {"torch", "sphinx", "jupyter_book", "myst_nb", "jupytext", "pytest", "requests", "urllib3"}


def test_lazy_loader_knows_every_submodule():
    """Every public module of the package is reachable as an attribute (no AttributeError)."""
    from pathlib import Path

    root = Path(physmis_edu.__file__).parent
    modules = {p.stem for p in root.glob("*.py") if not p.stem.startswith("_")}
    modules |= {p.name for p in root.iterdir() if (p / "__init__.py").exists()}
    assert modules == set(physmis_edu._SUBMODULES)
    assert "kernels" in modules and "kernel_families" not in modules  # one kernels package (issue 11)
    for name in sorted(modules):
        assert getattr(physmis_edu, name).__name__ == f"physmis_edu.{name}"


def test_print_wrapped_breaks_only_long_lines_with_a_hanging_indent(capsys):
    from physmis_edu.runtime import print_wrapped

    print_wrapped("  short line\n  " + "word " * 40, "end", width=40)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "  short line"
    assert all(len(line) <= 40 for line in lines)
    assert all(line.startswith("      ") for line in lines[2:])
    assert " ".join(" ".join(lines[1:]).split()) == " ".join(["word"] * 40 + ["end"])
    with pytest.raises(ValueError, match="width"):
        print_wrapped("x", width=0)


def test_span_states_a_range_or_one_value_and_names_bad_input():
    from physmis_edu.runtime import span

    assert span([0.2071, 0.2391, 0.227]) == "0.207 to 0.239"
    assert span([0.0411, 0.0412], ".2f") == "0.04"
    assert span([0.026, 0.0305], ".1%") == "2.6% to 3.0%"
    with pytest.raises(ValueError, match="values"):
        span([])
    with pytest.raises(ValueError, match="values"):
        span([0.1, float("nan")])
