"""The kernel panel of Chapter 6: cache, scores, controls, leaderboard, and c never reaching calibration."""

import dataclasses
import inspect
from pathlib import Path

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


def _spec(name, perturb):
    return panel.KernelSpec(name, lambda train, samples, rng, ctx: type("K", (), {
        "perturb": lambda self, x, rng=None: perturb(x).astype(np.float32)})())


class _ReadFirstValue:
    """A task-like recovery that reads the control off the first entry: shifts can be placed exactly."""

    lo, hi = 0.0, 1.0

    def __init__(self):
        from physmis_edu.tasks import Prior

        self.prior = Prior(0.0, 1.0)

    def measure(self, x):
        return np.asarray(x, dtype=np.float64)[:, 0, 0]


def test_inside_pearson_is_not_won_by_overflow():
    task, rng, n = _ReadFirstValue(), np.random.default_rng(0), 4000
    train = rng.uniform(0, 1, size=(n, 4, 1)).astype(np.float32)
    out_of_range = rng.uniform(size=n) < 0.7
    # The "model" sends 70% of its mass above the range and keeps the rest in the lower half.
    samples = np.where(out_of_range[:, None, None], 1.5, 0.5 * train).astype(np.float32)
    data = panel.CellData(panel.Cell("logistic-chaotic", "VAE", 0), train, train, samples)
    # A kernel that pushes as much mass out, but keeps the rest in the upper half: wrong inside.
    wrong = _spec("wrong inside", lambda x: np.where(out_of_range[:, None, None], 1.5, 0.5 + 0.5 * x))
    right = _spec("right inside", lambda x: np.where(out_of_range[:, None, None], 1.5, 0.5 * x))
    scores = [panel.score_kernel(task, data, spec, panel.Context(model="VAE"), rng=0, control=False)
              for spec in (wrong, right)]
    for s in scores:
        assert s.oos_observed == pytest.approx(0.7, abs=0.03) and s.oos_predicted == pytest.approx(s.oos_observed)
        assert s.pearson > 0.95  # over all bins the overflow bin dominates, right or wrong inside
    assert scores[0].inside_pearson < -0.5 and scores[1].inside_pearson > 0.9


def test_perfect_model_control_records_the_chosen_identity():
    data = _fake_cell()
    task = panel.make_task("logistic-chaotic")
    identity = panel.score_kernel(task, data, _gaussian_spec(0.0), panel.Context(model="VAE"), rng=0)
    noisy = panel.score_kernel(task, data, _gaussian_spec(0.05), panel.Context(model="VAE"), rng=0)
    assert identity.pm_identity is True and identity.pm_pass and identity.pm_params == "Gaussian(sigma=0)"
    assert noisy.pm_identity is False and not noisy.pm_pass


def test_leaderboard_and_format():
    scores = panel.evaluate_panel([_fake_cell(seed=s, shrink=0.1) for s in (0, 1)],
                                  [_gaussian_spec(0.0), _gaussian_spec(0.01)], rng=0)
    kernels = {s.kernel for s in scores}
    assert kernels == {"Gaussian 0.0", "Gaussian 0.01", "ceiling (other seed)", panel.SPLIT_HALF}
    table = panel.leaderboard(scores, seeds=[1])
    assert all(row["n"] == 1 for row in table)
    # Rows are data: how each was obtained, and the medians per model class and per task.
    for row in table:
        assert row["per_task"].keys() == {"logistic-chaotic"} and row["per_model"].keys() == {"VAE"}
        assert row["per_model"]["VAE"]["pearson"] == pytest.approx(row["pearson"])
        assert {"inside_pearson", "oos_observed", "oos_predicted", "pm_identity", "tv_observed",
                "ef_ceiling", "kind", "before_training", "cost_fraction"} <= set(row)
        assert row["kind"] == ("reference" if panel.is_reference(row["kernel"]) else "kernel")
        # The drift being predicted (median TV of the observed histograms) is far above the null.
        assert row["tv_observed"] > 2 * max(s.null_tv99 for s in scores)
    by_name = {row["kernel"]: row for row in table}
    assert by_name["Gaussian 0.0"]["pm_identity"] == 1.0 and by_name["Gaussian 0.0"]["pm_pass"] == 1.0
    # The two reference rows (the same drift from another training run, or from the other half of the
    # same model's samples) top a panel whose kernels are pure noise.
    assert {row["kernel"] for row in table[:2]} == {"ceiling (other seed)", panel.SPLIT_HALF}
    text = panel.format_leaderboard(table)
    assert "Pearson" in text and "inside" in text and "Gaussian 0.01" in text
    markdown = panel.markdown_leaderboard(table)
    assert markdown.count("\n") == len(table) + 1 and "| Gaussian 0.01 | kernel |" in markdown


def test_calibration_never_sees_c():
    # A kernel spec is built from trajectories and a Context; the Context carries no task object,
    # no control values and no recovery.
    fields = {f.name for f in dataclasses.fields(panel.Context)}
    assert fields == {"model", "residual", "task", "seed"}
    # The task arrives as its key (a string), never as a Task object with its recovery.
    types = {f.name: str(f.type) for f in dataclasses.fields(panel.Context)}
    assert types == {"model": "str", "residual": "Callable | None", "task": "str", "seed": "int"}
    assert isinstance(panel.Context("DiffusionMLP", task="toy").task, str)
    seen = []

    def build(train, samples, rng, context):
        seen.append((train.shape, None if samples is None else samples.shape, type(context)))
        return Gaussian(0.0)

    assert list(inspect.signature(build).parameters) == ["train", "samples", "rng", "context"]
    data = _fake_cell()
    panel.score_kernel(panel.make_task("logistic-chaotic"), data, panel.KernelSpec("g", build),
                       panel.Context(model="VAE"), rng=0)
    assert seen == [((1500, 32, 1), (1500, 32, 1), panel.Context)] * 2


def test_score_cache_gives_identical_scores(tiny, tmp_path, monkeypatch):
    import json

    import torch

    from physmis_edu.kernels import Shrinkage, calibrate

    torch.set_num_threads(1)
    datas = [panel.load_or_train(panel.Cell("logistic-chaotic", "VAE", s), tmp_path) for s in (0, 1)]
    builds = []

    def gaussian(train, samples, rng, context):
        builds.append("gaussian")
        return calibrate(Gaussian, train, samples, grid=np.geomspace(1e-3, 1.0, 5), rng=rng, n_perturb=100,
                         refine=False).kernel

    def shrinkage(train, samples, rng, context):
        builds.append("shrinkage")
        grid = {"tau": [1e-3, 1e-2, 1e-1], "sigma": [0.0, 0.05]}
        return calibrate(Shrinkage, train, samples, grid=grid, residual=context.residual, rng=rng, n_perturb=100).kernel

    specs = [panel.KernelSpec("g", gaussian, params={"grid": 5}), panel.KernelSpec("s", shrinkage, params={"grid": 6}),
             panel.KernelSpec("uncached", lambda train, samples, rng, context: Gaussian(0.01))]

    def run(cache, **kw):
        builds.clear()
        return [s.__dict__ for s in panel.evaluate_panel(datas, specs, rng=0, score_cache=cache, **kw)]

    cold = run(None)
    assert len(builds) == 2 * 2 * 2  # 2 cells x 2 specs, each built for the score and the perfect-model control
    first = run(tmp_path)
    assert len(builds) == 8 and len(list((tmp_path / "scores").rglob("*.json"))) == 4
    warm = run(tmp_path)
    assert builds == []  # every cached spec read back, the uncached one has no build to count
    # Same numbers from a cold score, a score written to the cache and one read back from it
    # (compared as JSON text, so that NaN equals NaN).
    def numbers(scores):
        return [json.dumps({k: v for k, v in s.items() if k != "seconds"}) for s in scores]

    assert numbers(first) == numbers(cold) and numbers(warm) == numbers(cold)
    # A different scoring setting or a code change is a miss, never a stale hit.
    run(tmp_path, bins=10)
    assert len(builds) == 8
    key = panel.score_key(datas[0], specs[0], 20, [0, 0, 0, 0])
    assert {"cell_config", "data", "params", "bins", "stream", "code"} <= set(key)
    assert key["code"] == panel.score_code_hash([__file__])  # the file defining the specs is hashed too
    monkeypatch.setattr(panel.score, "score_code_hash", lambda extra=(): "edited")
    run(tmp_path)
    assert len(builds) == 8


def test_proxy_kernel_never_reads_c_and_its_cache_round_trips(tiny, tmp_path, monkeypatch):
    import torch

    from physmis_edu.tasks import LogisticMap

    torch.set_num_threads(1)
    cell = panel.Cell("logistic-chaotic", "VAE", 1)
    train, fresh = panel.train._task_data(cell, tmp_path)
    data = panel.CellData(cell, train, fresh, fresh)  # the "expensive model" is not needed before scoring
    context = panel.Context(model="VAE", task="logistic-chaotic", seed=1)
    recover = LogisticMap.recover

    def no_recovery(self, x):
        raise AssertionError("the recovery was called before the final scoring step")

    # Training the proxy, building both proxy kernels and perturbing: no recovery, hence no c.
    monkeypatch.setattr(LogisticMap, "recover", no_recovery)
    first = panel.load_or_train_proxy(cell, tmp_path, fraction=0.5)
    again = panel.load_or_train_proxy(cell, tmp_path, fraction=0.5)
    assert not first.cached and again.cached and first.fraction == 0.5
    np.testing.assert_array_equal(first.samples, again.samples)
    assert first.samples.shape == train.shape == (300, 32, 1) and first.digest() == again.digest()
    config = panel.proxy_config(cell, 0.5)
    assert config["model_config"]["train_steps"] == 15  # half of the tiny budget of 30
    assert config["seed"] == panel.proxy_seed(cell) and config["seed"] not in (0, 1, 2)  # not the cells' seeds
    assert panel.proxy_path(cell, tmp_path, 0.5).exists()
    assert panel.proxy_path(cell, tmp_path, 0.25) != panel.proxy_path(cell, tmp_path, 0.5)
    with pytest.raises(ValueError, match="fraction"):
        panel.proxy_config(cell, 0.0)
    specs = [panel.proxy_spec(kind, 0.5, {cell: first}) for kind in panel.PROXY_KINDS]
    assert all(not s.needs_samples and s.params["fraction"] == 0.5 for s in specs)
    # A cheap proxy trains on the target task: it is not a before-training kernel.
    assert all(s.cost_fraction == 0.5 and not s.before_training for s in specs)
    assert list(inspect.signature(specs[0].build).parameters) == ["train", "samples", "rng", "context"]
    kernels = [s.build(train, None, np.random.default_rng(0), context) for s in specs]
    perturbed = [k.perturb(train, np.random.default_rng(1)) for k in kernels]
    assert all(p.shape == train.shape for p in perturbed)
    other_seed = dataclasses.replace(context, seed=2)
    with pytest.raises(ValueError, match="no proxy"):
        specs[0].build(fresh, None, np.random.default_rng(0), other_seed)  # another cell's proxy

    monkeypatch.setattr(LogisticMap, "recover", recover)
    task = panel.make_task("logistic-chaotic")
    # Proxy samples as q_hat: exactly the proxy's own recovered values (as many draws as samples).
    np.testing.assert_array_equal(np.sort(task.measure(perturbed[0])), np.sort(task.measure(first.samples)))
    score = panel.score_kernel(task, data, specs[0], context, rng=0)
    assert score.pm_pass is None and score.pm_identity is None  # before training: no perfect-model control
    assert np.isfinite(score.pearson) and score.tv_predicted > 0


def test_routing_by_inside_pearson():
    def score(kernel, seed, pearson, inside):
        return panel.CellScore(cell=f"sine/VAE/s{seed}", task="sine", model="VAE", seed=seed, kernel=kernel,
                               pearson=pearson, spearman=0.0, explained_fraction=0.0, sign_agree=True,
                               tv_observed=0.1, tv_predicted=0.1, oos_observed=0.0, oos_predicted=0.0,
                               null_tv99=0.05, inside_pearson=inside)

    scores = [score("a", 0, 0.9, 0.1), score("b", 0, 0.5, 0.7), score("a", 1, 0.2, 0.2), score("b", 1, 0.3, 0.3)]
    routed, chosen = panel.route_by_tune_seed(scores, 0, ["a", "b"])
    assert chosen == {"VAE": "a"} and {r.kernel for r in routed} == {"routed per model (tuned on seed)"}
    routed, chosen = panel.route_by_tune_seed(scores, 0, ["a", "b"], key="inside_pearson", name="inside")
    assert chosen == {"VAE": "b"} and [r.pearson for r in routed if r.seed == 1] == [0.3]


def test_shrunk_proxy_spec_and_lambda_choice():
    data = _fake_cell(task="sine")
    proxy = panel.ProxyData(data.cell, 0.25, data.samples)
    context = panel.Context(model="VAE", task="sine", seed=data.cell.seed)
    single = panel.proxy_spec("samples", 0.25, {data.cell: proxy}, name="s", mix=0.3)
    per_model = panel.proxy_spec("samples", 0.25, {data.cell: proxy}, name="m", mix={"VAE": 0.6})
    assert single.params["mix"] == 0.3 and not single.needs_samples
    assert single.build(data.train, None, np.random.default_rng(0), context).mix == 0.3
    assert per_model.build(data.train, None, np.random.default_rng(0), context).mix == 0.6
    with pytest.raises(ValueError, match="mix"):
        panel.proxy_spec("residuals", 0.25, {data.cell: proxy}, mix=0.3)

    def score(lam, model, ef):
        return panel.CellScore(cell=f"sine/{model}/s0", task="sine", model=model, seed=0, kernel=f"shrunk {lam:g}",
                               pearson=0.5, spearman=0.5, explained_fraction=ef, sign_agree=True, tv_observed=0.1,
                               tv_predicted=0.1, oos_observed=0.0, oos_predicted=0.0, null_tv99=0.05)

    scores = [score(0.0, "VAE", 0.0), score(0.5, "VAE", 0.4), score(1.0, "VAE", 0.2),
              score(0.0, "Transformer", 0.0), score(0.5, "Transformer", -0.1), score(1.0, "Transformer", 0.3)]
    assert panel.best_lambda(scores, (0.0, 0.5, 1.0))[0] == 1.0  # medians 0.0, 0.15, 0.25
    assert panel.best_lambda(scores, (0.0, 0.5, 1.0), model="VAE")[0] == 0.5


def test_split_half_measures_within_model_noise_only():
    task = panel.make_task("logistic-chaotic")
    drifting = panel.split_half(task, _fake_cell(seed=0, shrink=0.15))
    assert drifting.kernel == panel.SPLIT_HALF
    assert drifting.pearson > 0.8 and drifting.tv_observed > drifting.null_tv99
    # An undrifted "model": each half stays inside the finite-sample null of its own size.
    exact = panel.split_half(task, _fake_cell(seed=1, shrink=0.0))
    assert exact.tv_observed <= exact.null_tv99 and exact.tv_predicted <= exact.null_tv99
    assert len(exact.dq_observed) == len(exact.dq_predicted) == 20 + 2


def test_pooled_leaderboard_reduces_to_the_cell_score_and_averages_seeds():
    task = panel.make_task("logistic-chaotic")
    ctx = panel.Context(model="VAE")
    shrink = panel.KernelSpec("shrink", lambda train, samples, rng, c: type("K", (), {
        "perturb": lambda self, x, rng=None: (0.85 * x + 0.15 * train.mean(axis=0)).astype(np.float32)})())
    cells = {s: _fake_cell(seed=s, shrink=0.15) for s in (0, 1, 2)}
    scores = {s: panel.score_kernel(task, cells[s], shrink, ctx, rng=s, control=False) for s in cells}
    # One seed: the class-level figures are the cell's own.
    (row,) = panel.pooled_leaderboard([scores[1]], seeds=[1], reference_seed=0)
    assert row["kernel"] == "shrink" and row["n"] == 1
    assert row["pearson"] == pytest.approx(scores[1].pearson)
    assert row["ef"] == pytest.approx(scores[1].explained_fraction)
    assert row["inside_pearson"] == pytest.approx(scores[1].inside_pearson)
    # Two seeds: the observed target is the mean shift; seed 0 supplies the reference row.
    table = panel.pooled_leaderboard(list(scores.values()), seeds=[1, 2], reference_seed=0)
    rows = {r["kernel"]: r for r in table}
    assert set(rows) == {"shrink", panel.POOLED_CEILING}
    mean_obs = np.mean([scores[s].dq_observed for s in (1, 2)], axis=0)
    mean_pred = np.mean([scores[s].dq_predicted for s in (1, 2)], axis=0)
    assert rows["shrink"]["pearson"] == pytest.approx(np.corrcoef(mean_pred, mean_obs)[0, 1])
    ref = np.asarray(scores[0].dq_observed)
    assert rows[panel.POOLED_CEILING]["pearson"] == pytest.approx(np.corrcoef(ref, mean_obs)[0, 1])
    assert "shrink" in panel.format_leaderboard(table)
    with pytest.raises(ValueError, match="reference_seed"):
        panel.pooled_leaderboard(list(scores.values()), seeds=[0, 1], reference_seed=0)


def test_applied_tasks_are_registered_but_not_in_the_default_panel():
    maze, pendulum = panel.make_task("maze"), panel.make_task("pendulum")  # fills the registry
    assert set(panel.APPLIED_TASKS) <= set(panel.PANEL_TASKS)
    assert not set(panel.APPLIED_TASKS) & set(panel.CORE_TASKS)
    assert {c.task for c in panel.panel_cells()} == set(panel.CORE_TASKS)
    assert maze.length == pendulum.length == 32
    assert {c.task for c in panel.panel_cells(tasks=panel.APPLIED_TASKS, seeds=(0,))} == {"maze", "pendulum"}


def test_cell_cache_key_follows_the_model_and_task_code(monkeypatch, tmp_path):
    cell = panel.Cell("sine", "VAE", 0)
    assert panel.cell_config(cell)["code"] == panel.sample_code_hash()
    before = panel.cache_path(cell, tmp_path)
    # An edit to the models' or tasks' source changes the hash, hence the cache path: no stale reuse.
    root = Path(panel.__file__).resolve().parents[1]
    monkeypatch.setitem(panel.store._CODE_HASHES, (root / "models", root / "tasks"), "edited")
    assert panel.cache_path(cell, tmp_path) != before
    assert panel.proxy_path(cell, tmp_path, 0.25) != before



def test_cache_writes_are_atomic_and_stale_temporaries_are_removed(tmp_path, monkeypatch):
    import os

    dead = 999_999_999  # above any pid_max: no such process
    stale_new = tmp_path / f".a.npz.{dead}.k2j3h4.tmp"
    stale_old = tmp_path / f"b.npz.{dead}.tmp.npz"  # names older versions left behind
    stale_older = tmp_path / f"d.npz.{dead}.tmp"
    live = tmp_path / f".c.npz.{os.getpid()}.x8y9z0.tmp"
    for p in (stale_new, stale_old, stale_older, live):
        p.write_bytes(b"partial")
    target = tmp_path / "data.npz"
    panel.save_npz(target, x=np.arange(3))
    assert not stale_new.exists() and not stale_old.exists() and not stale_older.exists()
    assert live.exists()
    with np.load(target) as blob:
        assert blob["x"].tolist() == [0, 1, 2]

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", crash)
    with pytest.raises(KeyboardInterrupt):
        panel.save_npz(tmp_path / "other.npz", x=np.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["data.npz", live.name])


def test_atomic_write_text(tmp_path):
    target = tmp_path / "sub" / "results.json"
    panel.save_text(target, '{"a": 1}')
    panel.save_text(target, '{"a": 2}')
    assert target.read_text() == '{"a": 2}' and [p.name for p in target.parent.iterdir()] == ["results.json"]


def test_book_profile_reads_the_store_and_needs_no_training():
    from physmis_edu import zoo

    cell = panel.Cell("toy", "VAE", 1, profile="book")
    with pytest.raises(ValueError, match="store"):
        panel.Cell("maze", "VAE", 0, profile="book")  # no book-grade run of it
    data = panel.load_or_train(cell)  # no cache needed: nothing is trained
    run = zoo.load("toy", "VAE", 1)
    np.testing.assert_array_equal(data.samples, run.samples)
    np.testing.assert_array_equal(data.train, run.train)
    assert cell.make_task().length == run.task.length == 8
    assert panel.cell_config(cell)["run"] == "toy.VAE.s1"
    with pytest.raises(ValueError, match="train"):
        panel.proxy_config(cell, 0.125)  # a book-grade proxy is keyed by its training data
    config = panel.proxy_config(cell, 0.125, data.train)
    assert config["model_config"]["train_steps"] == int(np.ceil(0.125 * 10_000))
    with pytest.raises(ValueError, match="cache"):
        panel.run_panel([cell], cache=None, proxies=True)
    cells = panel.panel_cells(["toy"], ["VAE"], (0, 1), profile="book")
    with pytest.raises(ValueError, match="kernels"):
        panel.run_panel(cells, proxies=False, kernels=["no such kernel"], log=lambda text: None)
    results = panel.run_panel(cells, cache=None, proxies=False, score_cache=False, jobs=1,
                              kernels=["Gaussian (NN-dist)", "Quantise (stats)"],
                              log=lambda text: None)
    assert results["seconds"]["trained_now"] == 0
    assert results["profile"] == "book" and results["report_seeds"] == [1]
    kinds = {r["kernel"]: r["kind"] for r in results["leaderboard"]}
    assert kinds[panel.CEILING] == kinds[panel.SPLIT_HALF] == "reference"
    assert kinds["Gaussian (NN-dist)"] == "kernel" and "routed" in kinds.values()
    assert all(r["n"] == 1 for r in results["leaderboard"])
    assert results["models"]["VAE"]["short"] == "VAE"
    text = panel.format_leaderboard(results["leaderboard"], {"VAE": "VAE"})
    assert max(len(line) for line in text.splitlines()) <= 88


def test_markdown_leaderboard_says_how_each_kernel_was_obtained():
    base = {"n": 2, "pearson": 0.5, "inside_pearson": 0.4, "ef": 0.1, "ef_ceiling": 0.7,
            "pm_pass": None, "pearson_ci": [0.3, 0.6], "inside_pearson_ci": None, "ef_ci": None,
            "per_model": {"VAE": {"pearson": 0.5, "inside_pearson": 0.4, "ef": 0.1}}}
    table = [{**base, "kernel": "a", "kind": "kernel", "before_training": True,
              "cost_fraction": None},
             {**base, "kernel": "b", "kind": "kernel", "before_training": False,
              "cost_fraction": 0.125}]
    text = panel.markdown_leaderboard(table, {"VAE": "VAE"})
    assert "| a | before training |" in text and "| b | cheap proxy (0.125 cost) |" in text
    assert "0.50 [0.30, 0.60]" in text


def test_decomposition_separates_shape_amount_and_out_of_range_mass():
    # The shape is right (the same bins gain and lose) but twice the mass moves inside the range,
    # and the out-of-range mass is half the observed.
    observed = [0.02, 0.1, -0.1, 0.0, 0.0]
    predicted = [0.01, 0.2, -0.2, 0.0, 0.0]
    score = panel.CellScore(cell="toy/VAE/s0", task="toy", model="VAE", seed=0, kernel="k",
                            pearson=0.9, spearman=0.9, explained_fraction=0.0, sign_agree=True,
                            tv_observed=0.1, tv_predicted=0.2, oos_observed=0.04,
                            oos_predicted=0.02, null_tv99=0.01, inside_pearson=1.0,
                            dq_predicted=predicted, dq_observed=observed)
    parts = panel.decompose(score)
    assert parts["inside_pearson"] == 1.0
    assert parts["moved_observed"] == pytest.approx(0.1)
    assert parts["moved_ratio"] == pytest.approx(2.0) and parts["oos_ratio"] == pytest.approx(0.5)
    (row,) = panel.leaderboard([score])
    assert row["moved_ratio"] == pytest.approx(2.0) and row["oos_ratio"] == pytest.approx(0.5)


def test_leaderboard_plots_fit_the_page():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from physmis_edu.plotting import plot_leaderboard, plot_leaderboard_groups

    scores = panel.evaluate_panel([_fake_cell(seed=s, shrink=0.1) for s in (0, 1)],
                                  [_gaussian_spec(0.0), _gaussian_spec(0.01)], rng=0)
    board = panel.leaderboard(scores, seeds=[1])
    fig = plot_leaderboard(board, reference=panel.CEILING)
    assert fig.get_figwidth() <= 8 and len(fig.axes) == 2
    (legend,) = fig.legends
    assert min(t.get_fontsize() for t in legend.get_texts()) >= 9
    assert {t.get_text() for t in legend.get_texts()} >= {"reference", "kernel", "goal"}
    heat = plot_leaderboard_groups(board, {"VAE": "VAE"})
    assert heat.get_figwidth() <= 8
    assert [t.get_text() for t in heat.axes[0].get_xticklabels()] == ["VAE", "logistic-chaotic"]
    plt.close("all")


def test_best_of_each_kind_picks_by_kind_and_skips_references():
    def row(name, kind="kernel", inside=0.5, pm=None, before=False, cost=None):
        return dict(kernel=name, kind=kind, inside_pearson=inside, ef=0.1, pm_pass=pm,
                    before_training=before, cost_fraction=cost)

    board = [row(panel.CEILING, kind="reference", inside=0.9),
             row("fails control", inside=0.8, pm=0.5),
             row("passes", inside=0.6, pm=1.0), row("passes, worse", inside=0.4, pm=1.0),
             row("transferred", inside=0.7, before=True),
             row("no score", inside=float("nan"), before=True)]
    best = panel.best_of_each_kind(board)
    assert best["calibrated, passes the control"]["kernel"] == "passes"
    assert best["before training"]["kernel"] == "transferred"
    assert best["cheap proxy"] is None
    assert best["any"]["kernel"] == "fails control"  # the ceiling is a reference, not a kernel
    assert list(best) == list(panel.KERNEL_KINDS)
    with pytest.raises(ValueError, match="board"):
        panel.best_of_each_kind([])


def test_best_of_each_kind_on_the_shipped_book_panel():
    board = panel.read_results("kernel_panel_book.json")["leaderboard"]
    best = panel.best_of_each_kind(board)
    assert best["calibrated, passes the control"]["pm_pass"] == 1
    assert best["before training"]["before_training"]
    assert best["any"]["inside_pearson"] >= max(
        r["inside_pearson"] for r in best.values() if r is not None)
