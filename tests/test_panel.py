"""The kernel panel of Chapter 6: cache, scores, controls, leaderboard, and c never reaching calibration."""

import dataclasses
import inspect

import numpy as np
import pytest

from physmis_edu import panel
from physmis_edu.kernels import Gaussian


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setitem(panel.PANEL_SIZES, "ci", dict(n_train=300, n_samples=300))
    monkeypatch.setitem(panel.PANEL_BUDGETS, "ci", {**panel.PANEL_BUDGETS["ci"], "VAE": dict(train_steps=30)})


def _fake_cell(task="logistic-chaotic", seed=0, shrink=0.0):
    """A cell whose "model" is fresh true data pulled toward its mean by ``shrink`` (no training)."""
    t = panel.make_task(task)
    train, _ = t.sample(1500, rng=seed)
    fresh, _ = t.sample(1500, rng=seed + 100)
    model, _ = t.sample(1500, rng=seed + 200)
    samples = ((1 - shrink) * model + shrink * model.mean(axis=0)).astype(np.float32)
    return panel.CellData(panel.Cell(task, "VAE", seed), train, fresh, samples)


def _gaussian_spec(scale):
    return panel.KernelSpec(f"Gaussian {scale}", lambda train, samples, rng, context: Gaussian(scale))


def test_cell_validation():
    with pytest.raises(ValueError, match="model"):
        panel.Cell("sine", "GAN", 0)
    with pytest.raises(ValueError, match="task key"):
        panel.Cell("pendulum?", "VAE", 0)
    assert len(panel.panel_cells(seeds=(0, 1))) == 4 * 4 * 2


def test_cache_round_trip(tiny, tmp_path):
    import torch

    torch.set_num_threads(1)
    cell = panel.Cell("sine", "VAE", 3)
    first = panel.load_or_train(cell, tmp_path)
    again = panel.load_or_train(cell, tmp_path)
    assert not first.cached and again.cached
    np.testing.assert_array_equal(first.samples, again.samples)
    np.testing.assert_array_equal(first.train, again.train)
    assert first.samples.shape == first.fresh.shape == (300, 32, 1)
    assert panel.cache_path(cell, tmp_path).exists()
    # A different budget is a different cache entry.
    other = dataclasses.replace(cell, seed=4)
    assert panel.cache_path(other, tmp_path) != panel.cache_path(cell, tmp_path)


def test_perfect_model_control_separates_identity_from_a_large_kernel():
    data = _fake_cell()
    task = panel.make_task("logistic-chaotic")
    ctx = panel.Context(model="VAE")
    tv, null, ok = panel.perfect_model_control(task, data, _gaussian_spec(0.0), ctx, rng=0)
    assert ok and tv <= null
    tv, null, ok = panel.perfect_model_control(task, data, _gaussian_spec(0.05), ctx, rng=0)
    assert not ok and tv > null


def test_score_and_ceiling():
    task = panel.make_task("logistic-chaotic")
    drifting = [_fake_cell(seed=s, shrink=0.15) for s in (0, 1)]
    ceiling = panel.seed_ceiling(task, drifting[0], drifting[1])
    assert ceiling.pearson > 0.8 and ceiling.explained_fraction > 0.3
    # Shrinking toward the mean is itself a kernel: applied to the training data it predicts the drift.
    shrink = panel.KernelSpec("shrink", lambda train, samples, rng, ctx: type("K", (), {
        "perturb": lambda self, x, rng=None: (0.85 * x + 0.15 * train.mean(axis=0)).astype(np.float32)})())
    score = panel.score_kernel(task, drifting[0], shrink, panel.Context(model="VAE"), rng=0)
    assert score.pearson > 0.8 and score.explained_fraction > 0.3 and score.sign_agree
    assert score.tv_observed > score.null_tv99
    assert score.pm_pass is False  # a fixed shrinkage predicts drift whatever the samples


def test_leaderboard_and_format():
    scores = panel.evaluate_panel([_fake_cell(seed=s, shrink=0.1) for s in (0, 1)],
                                  [_gaussian_spec(0.0), _gaussian_spec(0.01)], rng=0)
    kernels = {s.kernel for s in scores}
    assert kernels == {"Gaussian 0.0", "Gaussian 0.01", "ceiling (other seed)"}
    table = panel.leaderboard(scores, seeds=[1])
    assert all(row["n"] == 1 for row in table)
    assert table[0]["kernel"] == "ceiling (other seed)"
    text = panel.format_leaderboard(table)
    assert "Pearson" in text and "Gaussian 0.01" in text


def test_calibration_never_sees_c():
    # A kernel spec is built from trajectories and a Context; the Context carries no task object,
    # no control values and no recovery.
    fields = {f.name for f in dataclasses.fields(panel.Context)}
    assert fields == {"model", "residual", "task"}
    assert all(isinstance(f.type, str) or f.type is not None for f in dataclasses.fields(panel.Context))
    seen = []

    def build(train, samples, rng, context):
        seen.append((train.shape, None if samples is None else samples.shape, type(context)))
        return Gaussian(0.0)

    assert list(inspect.signature(build).parameters) == ["train", "samples", "rng", "context"]
    data = _fake_cell()
    panel.score_kernel(panel.make_task("logistic-chaotic"), data, panel.KernelSpec("g", build),
                       panel.Context(model="VAE"), rng=0)
    assert seen == [((1500, 32, 1), (1500, 32, 1), panel.Context)] * 2
