"""Bad input across the public API: every case raises a clear error naming what was wrong (issue 12)."""

import numpy as np
import pytest

from physmis_edu import kernels as k
from physmis_edu import metrics as m
from physmis_edu import panel, runtime
from physmis_edu.kernels import calibrate
from physmis_edu.models import DiffusionMLP, DiffusionUNet
from physmis_edu.models.base import GenerativeModel
from physmis_edu.plotting import plot_drift
from physmis_edu.tasks import LogisticMap, Prior

U = Prior(0, 1)
X = np.random.default_rng(0).random((20, 8, 1))


def _cal(**kw):
    args = dict(factory=lambda sigma: k.Gaussian(sigma), grid={"sigma": [0.0, 0.1]}, train=X, samples=X)
    return calibrate(**{**args, **kw})


CASES = {
    "Prior('a', 1)": (lambda: Prior("a", 1), "lo"),
    "Prior(None, 1)": (lambda: Prior(None, 1), "lo"),
    "Prior(0, '1')": (lambda: Prior(0, "1"), "hi"),
    "bin_edges('x', 1)": (lambda: m.bin_edges("x", 1), "lo"),
    "null_quantile(q='a')": (lambda: m.null_quantile(U, 10, q="a"), "q"),
    "null_band(level=None)": (lambda: m.null_band(U, 10, level=None), "level"),
    "null_tv(rng=-1)": (lambda: m.null_tv(U, 10, rng=-1), "rng"),
    "Gaussian('0.1')": (lambda: k.Gaussian("0.1"), "sigma"),
    "Gaussian(None)": (lambda: k.Gaussian(None), "sigma"),
    "Gaussian(1j)": (lambda: k.Gaussian(1j), "sigma"),
    "LogisticMap(lo='a')": (lambda: LogisticMap(lo="a"), "lo"),
    "calibrate(n_perturb=0)": (lambda: _cal(n_perturb=0), "n_perturb"),
    "calibrate(n_perturb=-3)": (lambda: _cal(n_perturb=-3), "n_perturb"),
    "calibrate(grid={})": (lambda: _cal(grid={}), "grid"),
    "calibrate(grid={'sigma': 0.1})": (lambda: _cal(grid={"sigma": 0.1}), "grid"),
    "calibrate(residual_weight=nan)": (lambda: _cal(residual_weight=float("nan")), "residual_weight"),
    "calibrate(residual_weight=-1)": (lambda: _cal(residual_weight=-1), "residual_weight"),
    "calibrate(statistic='w2')": (lambda: _cal(statistic="w2"), "statistic"),
    "calibrate(residual, statistic='distances')": (
        lambda: _cal(residual=lambda x: x[:, 0, 0], statistic="distances"), "residual"),
    "calibrate(residual=3)": (lambda: _cal(residual=3), "residual"),
    "Smooth.noise((3, 8))": (lambda: k.Smooth(0.1, 2.0).noise((3, 8)), "shape"),
    "Smooth.noise('abc')": (lambda: k.Smooth(0.1, 2.0).noise("abc"), "shape"),
    "DiffusionUNet(dim_mults=5)": (lambda: DiffusionUNet(dim_mults=5), "dim_mults"),
    "DiffusionMLP(seed=2**64)": (lambda: DiffusionMLP(seed=2**64), "seed"),
    "DiffusionMLP(lr='a')": (lambda: DiffusionMLP(lr="a"), "lr"),
    "plot_drift(None)": (lambda: plot_drift(None), "report"),
    "Prior(density, grid=1)": (lambda: Prior(0, 1, density=lambda c: 1 + c, grid=1), "grid"),
    "Prior(density, grid=2.5)": (lambda: Prior(0, 1, density=lambda c: 1 + c, grid=2.5), "grid"),
    "Prior(density='flat')": (lambda: Prior(0, 1, density="flat"), "density"),
    "recovered_histogram(complex)": (lambda: m.recovered_histogram(np.array([0.5 + 1j]), 0, 1), "values"),
    "Gaussian.perturb(complex)": (lambda: k.Gaussian(0.1).perturb(X + 1j), "x"),
    "panel_cells(seeds=(0.5, 1.7))": (lambda: panel.panel_cells(seeds=(0.5, 1.7)), "seeds"),
    "panel_cells(seeds=(0, 0))": (lambda: panel.panel_cells(seeds=(0, 0)), "seeds"),
    "panel_cells(tasks=('toy', 'toy'))": (lambda: panel.panel_cells(tasks=("toy", "toy")), "tasks"),
    "bootstrap_ci(lambda v: nan)": (lambda: m.bootstrap_ci([0.1, 0.2], lambda v: np.nan), "statistic"),
    "seed_everything(2**64)": (lambda: runtime.seed_everything(2**64), "seed"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_names_the_argument(name):
    call, argument = CASES[name]
    with pytest.raises(ValueError, match=argument):
        call()


@pytest.mark.parametrize("var, value, call", [
    ("PHYSMIS_PROFILE", "fast", lambda: runtime.resolve_profile()),
    ("PHYSMIS_DEVICE", "tpu", lambda: runtime.resolve_device()),
    ("PHYSMIS_THREADS", "two", lambda: runtime.set_threads()),
    ("PHYSMIS_THREADS", "0", lambda: runtime.set_threads()),
])
def test_bad_environment_names_the_variable(monkeypatch, var, value, call):
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=var):
        call()


def test_base_class_hooks_say_what_to_use():
    with pytest.raises(NotImplementedError, match="DiffusionMLP"):
        GenerativeModel(device="cpu")._build(8, 1)


def test_normalise_refuses_the_wrong_channel_count():
    model = DiffusionMLP(train_steps=2, batch_size=4, device="cpu", progress=False)
    model.fit(np.random.default_rng(0).random((16, 8, 2)))
    with pytest.raises(ValueError, match="d=2"):
        model.normalise(np.zeros((3, 8, 1)))
    with pytest.raises(ValueError, match="d=2"):
        model.denormalise(np.zeros((3, 8, 3)))
    assert model.normalise(np.zeros((3, 8, 2))).shape == (3, 8, 2)
