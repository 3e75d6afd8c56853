"""`physmis reproduce`: cells, profiles, resuming, bad input, the command line and a dask cluster."""

import json
import subprocess
import sys

import numpy as np
import pytest

from physmis_edu import reproduce as rp
from physmis_edu import zoo
from physmis_edu.zoo import catalog

PAIR = "logistic-chaotic.DiffusionMLP-coords.s0"


@pytest.fixture
def tiny_ci(monkeypatch):
    # A budget far below ci's, so that a test trains in seconds; the plumbing is the same.
    monkeypatch.setitem(rp.PROFILES, "ci", dict(step_share=1 / 400, data_share=0.05,
                                                n_samples=300))


def test_scaled_spec_follows_the_profile():
    spec = catalog.SPECS["logistic-chaotic.DiffusionMLP.s0"]
    ci = rp.scaled_spec(spec, "ci")
    assert ci.config["train_steps"] == 500 and ci.n_train == 2_000
    assert ci.n_samples == 2_000 and ci.n_fresh >= ci.n_samples
    assert ci.milestones == () and not ci.checkpoint and ci.name == spec.name
    gpu = rp.scaled_spec(spec, "gpu")
    assert gpu.config == spec.config and gpu.n_train == spec.n_train
    assert gpu.n_samples == spec.n_samples


def test_cells_bring_their_baselines_and_skip_data_variants_by_default():
    names = [s.name for s in rp.cells_for((0,), "pendulum.DiffusionMLP-reweighted.s0")]
    assert names == ["pendulum.DiffusionMLP.s0", "pendulum.DiffusionMLP-reweighted.s0"]
    every = [s.name for s in rp.cells_for((0,))]
    assert not any("-data" in n for n in every)
    assert "maze.DiffusionUNet.s0" in every and "sine.VAE.s0" in every
    assert all(n.endswith(".s0") for n in every)


@pytest.mark.parametrize("kwargs, argument", [
    (dict(profile="fast"), "profile"),
    (dict(seeds="a,b"), "seeds"),
    (dict(seeds=[-1]), "seeds"),
    (dict(seeds=[]), "seeds"),
    (dict(only="zz*"), "only"),
    (dict(only=" , "), "only"),
    (dict(jobs=0), "jobs"),
    (dict(only=None, seeds=[7]), "seeds"),
])
def test_bad_input_is_named_and_writes_nothing(tmp_path, kwargs, argument):
    out = tmp_path / "out"
    with pytest.raises(rp.ReproduceInputError) as err:
        rp.reproduce(**{"only": "sine.VAE.s0", "out": out, **kwargs})
    assert err.value.argument == argument
    assert not (out / "reproduce.json").exists()


def test_an_output_path_that_is_a_file_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(rp.ReproduceInputError) as err:
        rp.reproduce("store", only="sine.VAE.s0", out=blocker)
    assert err.value.argument == "out"


def test_ci_profile_trains_scores_and_resumes(tmp_path, tiny_ci):
    first = rp.reproduce("ci", only=PAIR, out=tmp_path, progress=False)
    assert [r["variant"] for r in first.rows] == ["", "coords"]
    base, coords = first.rows
    assert base["train_steps"] == rp.MIN_STEPS and base["seeds"] == [0]
    assert coords["relative_to_baseline"] == pytest.approx(coords["tv"][0] / base["tv"][0])
    # The kernel scores the baseline only: it perturbs the data's coordinates.
    assert first.cells[0]["kernel"]["sigma"] > 0 and first.cells[1]["kernel"] is None
    report = json.loads((tmp_path / "reproduce.json").read_text())
    assert report["schema"] == rp.SCHEMA and report["version"] == rp.VERSION
    assert report["n_scored_now"] == 2 and len(report["cells"]) == 2
    assert (tmp_path / "reproduce.png").read_bytes()[:4] == b"\x89PNG"
    assert "kernel-informed coordinates" in (tmp_path / "reproduce.md").read_text()
    trained = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.npz")}
    assert len(trained) == 2

    again = rp.reproduce("ci", only=PAIR, out=tmp_path, progress=False)
    assert again.report["n_scored_now"] == 0 and again.rows == first.rows
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").glob("*.npz")} == trained

    (tmp_path / "cells" / f"{PAIR}.json").unlink()
    third = rp.reproduce("ci", only=PAIR, out=tmp_path, progress=False)
    assert third.report["n_scored_now"] == 1
    assert third.cells[1]["tv"] == pytest.approx(first.cells[1]["tv"])


def test_store_profile_scores_the_shipped_run_as_recorded(tmp_path):
    result = rp.reproduce("store", only="sine.VAE.s0", out=tmp_path, progress=False)
    cell = result.cells[0]
    run = zoo.load("sine", "VAE", 0)
    assert cell["tv"] == pytest.approx(run.meta["drift"]["tv"])
    assert cell["passed"] == run.checks["passed"]
    assert -1 <= cell["kernel"]["inside_pearson"] <= 1
    assert result.rows[0]["relative_to_baseline"] is None


def test_same_seed_same_scores_on_the_cpu(tmp_path):
    a = rp.score_cell("sine", "VAE", 0, "", zoo.store.DATA_DIR)
    b = rp.score_cell("sine", "VAE", 0, "", zoo.store.DATA_DIR)
    assert a["kernel"] == b["kernel"]


def test_dask_local_cluster_runs_two_tiny_cells(tmp_path, tiny_ci):
    joblib = pytest.importorskip("joblib")
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster), joblib.parallel_config(backend="dask"):
        result = rp.reproduce("ci", only=PAIR, jobs=2, out=tmp_path, progress=False)
    assert len(result.cells) == 2
    assert all(np.isfinite(c["tv"]) for c in result.cells)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "physmis_edu.cli", "reproduce", *args],
                          capture_output=True, text=True)


def test_cli_end_to_end_on_the_store(tmp_path):
    done = _cli("--profile", "store", "--only", "sine.VAE.s0", "--out", str(tmp_path),
                "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "| sine | VAE |" in done.stdout and "reproduce.json" in done.stdout
    assert (tmp_path / "reproduce.json").exists()


@pytest.mark.parametrize("args, option", [
    (["--profile", "fast"], "--profile"),
    (["--seeds", "x"], "--seeds"),
    (["--only", "zz*"], "--only"),
    (["--jobs", "0"], "--jobs"),
    (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler"),
])
def test_cli_bad_input_exits_2_naming_the_option(tmp_path, args, option):
    done = _cli("--profile", "store", "--only", "sine.VAE.s0", "--out", str(tmp_path / "o"),
                *args)
    assert done.returncode == 2 and option in done.stderr, done.stderr
    assert not (tmp_path / "o" / "reproduce.json").exists()


def test_cli_unwritable_out_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = _cli("--profile", "store", "--only", "sine.VAE.s0", "--out", str(blocker))
    assert done.returncode == 2 and "--out" in done.stderr
