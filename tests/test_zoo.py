"""The store of trained runs: checks, files, resumable build, cluster fan-out, shipped runs."""

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest

from physmis_edu import zoo
from physmis_edu import mitigations as mit
from physmis_edu.models import DiffusionMLP
from physmis_edu.zoo import build, catalog, checks, store

ROOT = Path(__file__).resolve().parents[1]


def tiny_specs(steps=30):
    """Two runs small enough to train in a second or two each."""
    configs = {"DiffusionMLP": dict(hidden=32, layers=2, diffusion_steps=10, batch_size=64,
                                    lr=2e-3, train_steps=steps),
               "VAE": dict(hidden=32, layers=2, latent=4, batch_size=64, lr=2e-3,
                           train_steps=steps)}
    return [catalog.RunSpec("logistic-chaotic", model, 0, config, n_train=300, n_samples=200,
                            n_fresh=200, n_curve=100, milestones=(steps // 2, steps),
                            checkpoint=model == "VAE")
            for model, config in configs.items()]


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("store")
    results = build.build(tiny_specs(), out, jobs=1, progress=False)
    return out, results


def test_fit_callback_runs_at_the_requested_steps():
    x, _ = catalog.make_task("logistic-chaotic").sample(200, rng=0)
    seen = []
    model = DiffusionMLP(hidden=16, layers=1, diffusion_steps=5, train_steps=12, batch_size=32,
                         progress=False)
    model.fit(x, callback=lambda m, step: seen.append((step, len(m.loss_history),
                                                       m.net_.training)),
              callback_steps=(4, 12))
    assert seen == [(4, 4, False), (12, 12, False)]
    with pytest.raises(ValueError, match="callback_steps"):
        model.fit(x, callback=print, callback_steps=(13,))
    with pytest.raises(ValueError, match="callback must be callable"):
        model.fit(x, callback_steps=(3,))


def test_callback_does_not_change_training():
    x, _ = catalog.make_task("logistic-chaotic").sample(200, rng=0)
    kwargs = dict(hidden=16, layers=1, diffusion_steps=5, train_steps=10, batch_size=32,
                  progress=False)
    plain = DiffusionMLP(**kwargs).fit(x)
    scored = DiffusionMLP(**kwargs).fit(x, callback=lambda m, s: m.sample(20, rng=s),
                                        callback_steps=(5,))
    assert np.allclose(plain.loss_history, scored.loss_history)
    assert np.allclose(plain.sample(50, rng=1), scored.sample(50, rng=1))


def test_quantise_round_trip_error_is_half_a_step():
    x = np.random.default_rng(0).uniform(-2, 3, size=(100, 8, 2)).astype(np.float32)
    codes, offset, scale = build.quantise(x)
    back = store.dequantise(codes, offset, scale)
    assert codes.dtype == np.uint16
    assert np.all(np.abs(back - x) <= scale / 2 + 1e-6)
    assert build.quantise(np.full((2, 3, 1), np.nan, dtype=np.float32)) is None


def test_sample_checks_pass_true_data_and_catch_noise_and_copies():
    task = catalog.make_task("logistic-chaotic")
    train, _ = task.sample(2000, rng=0)
    fresh, _ = task.sample(1000, rng=1)
    more, _ = task.sample(1000, rng=2)
    assert checks.sample_checks(task, more, train, fresh)["passed"]
    noisy = more + np.random.default_rng(3).normal(0, 0.05, more.shape).astype(np.float32)
    result = checks.sample_checks(task, noisy, train, fresh)
    assert not result["passed"]
    assert any("residual" in reason for reason in result["failed"])
    copies = checks.sample_checks(task, train[:1000], train, fresh)
    assert copies["nn_ratio"] == 0.0
    assert any("copying" in reason for reason in copies["failed"])


def test_build_writes_a_verified_store_and_resumes(tiny_store):
    out, results = tiny_store
    assert sorted(r["name"] for r in results) == sorted(s.name for s in tiny_specs())
    assert zoo.entries(root=out) == sorted(s.name for s in tiny_specs())
    run = zoo.load("logistic-chaotic", "VAE", root=out)
    assert run.samples.shape == (200, 16, 1) and run.samples.dtype == np.float32
    assert [c["step"] for c in run.curve] == [15, 30]
    assert set(run.checks) >= {"inside", "residual", "nn_ratio", "passed", "failed"}
    assert run.meta["spec_hash"] == tiny_specs()[1].spec_hash()
    expected, _ = catalog.training_data(tiny_specs()[1])
    assert np.array_equal(run.train, expected)
    assert run.model().sample(5, rng=0).shape == (5, 16, 1)
    with pytest.raises(ValueError, match="ships no checkpoint"):
        zoo.load("logistic-chaotic", "DiffusionMLP", root=out).model()
    # Finished runs are not retrained; a changed spec is.
    assert build.build(tiny_specs(), out, progress=False) == []
    assert [s.name for s in build.pending(tiny_specs(steps=20), out)] == [
        s.name for s in tiny_specs()]


def test_mitigation_variants_train_and_record_what_they_did(tiny_store):
    """Runs in a representation, on a reweighted set and conditioned on c (Chapters 9, 10)."""
    out, _ = tiny_store
    base = tiny_specs()[0]  # logistic-chaotic.DiffusionMLP.s0, the reweighting's calibration
    common = dict(n_train=300, n_samples=200, n_fresh=200, n_curve=100, milestones=(30,))
    specs = [
        catalog.RunSpec(base.task, base.model, 0, base.config, variant="coords",
                        representation=catalog.STUDY_COORDINATES[base.task], **common),
        catalog.RunSpec(base.task, base.model, 0, base.config, variant="reweighted",
                        reweight=dict(method="iterative", calibrated_on=base.name), **common),
        catalog.RunSpec(base.task, base.model, 0, base.config, variant="conditional",
                        conditional=True, **common)]
    build.build(specs, out, jobs=1, progress=False)
    coords = zoo.load(base.task, base.model, 0, "coords", root=out)
    assert coords.meta["spec"]["representation"]["name"] == "LogisticRatio"
    weighted = zoo.load(base.task, base.model, 0, "reweighted", root=out).meta["reweighting"]
    assert weighted["calibrated_on"] == base.name and weighted["sigma"] > 0
    assert weighted["predicted_outside_after"] >= weighted["min_outside"] - 1e-9
    assert 0 < weighted["effective_sample_size"] <= 300
    cond = zoo.load(base.task, base.model, 0, "conditional", root=out)
    assert set(cond.meta["conditioning"]) == {"rmse", "bias", "pearson", "failed", "outside"}
    requested, _ = cond.requested()
    assert requested.shape == (200,) and (requested >= 3.6).all() and (requested <= 4.0).all()
    # The baseline's spec is unchanged by the new fields: its hash omits them when off.
    assert "representation" not in base.to_dict() and "conditional" not in base.to_dict()
    rows = mit.study_table(base.task, base.model, seeds=(0,), root=out)
    assert [r["variant"] for r in rows] == list(mit.STUDY_VARIANTS)
    assert rows[0]["clear_of_baseline"] is None
    assert all(r["n_samples"] == 200 and len(r["tv"]) == 1 for r in rows)
    with pytest.raises(ValueError, match="variants"):
        mit.study_table(base.task, base.model, variants=("bagged",), root=out)


def test_conditional_planner_keeps_both_request_sets(tmp_path):
    """A conditional maze planner (Chapter 9) is sampled twice: distances from the prior, and
    each plan's own demonstration's distance; both sets are pinned to the same fresh ends."""
    config = dict(dim=8, dim_mults=(1, 2), diffusion_steps=10, batch_size=32, lr=2e-3,
                  train_steps=20, plan_endpoints=True)
    spec = catalog.RunSpec("maze", "DiffusionUNet", 0, config, n_train=200, n_samples=60,
                           n_fresh=80, n_curve=20, milestones=(20,), plan_endpoints=True,
                           conditional=True, variant="conditional")
    build.build([spec], tmp_path, jobs=1, progress=False)
    run = zoo.load("maze", "DiffusionUNet", 0, "conditional", root=tmp_path)
    prior_requests, prior_samples = run.requested("prior")
    joint_requests, joint_samples = run.requested("joint")
    assert prior_samples is run.samples and prior_requests.shape == (60,)
    assert ((prior_requests >= run.task.lo) & (prior_requests <= run.task.hi)).all()
    fresh = run.fresh[:60]
    assert np.allclose(joint_requests, run.task.measure(fresh))
    for samples in (prior_samples, joint_samples):
        assert samples.shape == (60, 32, 2)
        assert np.abs(samples[:, [0, -1]] - fresh[:, [0, -1]]).max() < 1e-3  # pinned ends
    assert set(run.meta["conditioning_joint"]) == set(run.meta["conditioning"])
    assert run.meta["quantisation_joint"]["ok"]  # the same 16-bit test as the main samples
    with pytest.raises(ValueError, match="requests must be"):
        run.requested("posterior")


def test_requested_names_runs_without_requests(tiny_store):
    out, _ = tiny_store
    with pytest.raises(ValueError, match="not conditional"):
        zoo.load("logistic-chaotic", "VAE", root=out).requested()


@pytest.mark.parametrize("changes, match", [
    (dict(representation={"name": "Rotate", "params": {}}), "representation name"),
    (dict(representation=catalog.STUDY_COORDINATES["pendulum"], checkpoint=True), "checkpoint"),
    (dict(representation=catalog.STUDY_COORDINATES["pendulum"], conditional=True),
     "unconditional"),
    (dict(reweight={"method": "ratio"}), "keys"),
    (dict(reweight={"method": "bagging", "calibrated_on": "x"}), "method"),
])
def test_mitigation_specs_reject_bad_fields(changes, match):
    with pytest.raises(ValueError, match=match):
        catalog.RunSpec("pendulum", "DiffusionMLP", 0, {}, **changes)


def test_load_reports_missing_truncated_and_altered_files(tiny_store, tmp_path):
    out, _ = tiny_store
    copy = tmp_path / "store"
    copy.mkdir()
    for path in out.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    name = "logistic-chaotic.DiffusionMLP.s0"
    npz = copy / f"{name}.npz"
    blob = npz.read_bytes()
    npz.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(zoo.ZooFileError, match=rf"{name}\.npz of run .* truncated or altered"):
        zoo.load("logistic-chaotic", "DiffusionMLP", root=copy)
    npz.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(zoo.ZooFileError, match="truncated or altered"):
        zoo.load("logistic-chaotic", "DiffusionMLP", root=copy)
    npz.unlink()
    with pytest.raises(zoo.ZooFileError, match=rf"{name}\.npz of run .* is missing"):
        zoo.load("logistic-chaotic", "DiffusionMLP", root=copy)
    with pytest.raises(ValueError, match="no run 'logistic-chaotic.Transformer.s0'"):
        zoo.load("logistic-chaotic", "Transformer", root=copy)
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(zoo.ZooFileError, match="manifest"):
        zoo.entries(root=copy)


def test_bad_arguments_name_themselves(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="task must be one of"):
        catalog.make_task("pendulum-typo")
    with pytest.raises(ValueError, match="--only"):
        build.select(tiny_specs(), "nothing-matches-*")
    with pytest.raises(ValueError, match="jobs"):
        build.build(tiny_specs(), tmp_path, jobs=0, progress=False)
    monkeypatch.setenv("PHYSMIS_ZOO_DIR", str(tmp_path / "absent"))
    with pytest.raises(ValueError, match="PHYSMIS_ZOO_DIR"):
        zoo.entries()


def test_dask_local_cluster_builds_two_tiny_runs(tmp_path):
    joblib = pytest.importorskip("joblib")
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster), joblib.parallel_config(backend="dask"):
        results = build.build(tiny_specs(), tmp_path, jobs=2, progress=False)
    assert len(results) == 2
    assert zoo.entries(root=tmp_path) == sorted(s.name for s in tiny_specs())


def test_cli_lists_and_rejects_bad_patterns(tmp_path):
    done = subprocess.run([sys.executable, "-m", "physmis_edu.zoo", "build", "--only", "zz*",
                           "--out", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode != 0 and "--only" in done.stderr
    listed = subprocess.run([sys.executable, "-m", "physmis_edu.zoo", "list", "--out",
                             str(tmp_path)], capture_output=True, text=True, check=True)
    assert listed.stdout.count("todo") == len(catalog.SPECS)


shipped = zoo.entries()


@pytest.mark.skipif(not shipped, reason="no runs shipped in the package yet")
@pytest.mark.parametrize("name", shipped)
def test_every_shipped_run_loads_and_matches_its_spec(name):
    task, model_variant, seed = name.split(".")
    model, _, variant = model_variant.partition("-")
    run = zoo.load(task, model, int(seed[1:]), variant=variant)
    spec = catalog.SPECS[name]
    assert run.meta["spec_hash"] == spec.spec_hash(), "the catalog changed: rebuild this run"
    assert run.samples.shape == (spec.n_samples, *run.train.shape[1:])
    # A sample may be non-finite only where decoding from a representation failed (Chapter 10);
    # each such sample is a failed recovery, counted in the recorded drift.
    bad = ~np.isfinite(run.samples).all(axis=(1, 2))
    assert bad.sum() == (run.meta["drift"]["n_failed"] if spec.representation else 0)
    # What the store records matches what the shipped samples show.
    again = checks.sample_checks(run.task, run.samples, run.train, run.fresh)
    assert again["nn_ratio"] == pytest.approx(run.checks["nn_ratio"], rel=1e-9)
    assert again["residual"] == pytest.approx(run.checks["residual"], rel=1e-9)


def test_store_stays_small():
    size = sum(p.stat().st_size for p in store.DATA_DIR.glob("*"))
    # 85 MiB: the package must stay a quick install in Colab; the six pendulum runs of
    # Chapter 8 (8,000 samples of 32 x 6 values in 16 bits) take 18 MiB, the nine of the
    # mitigation study (4,000 samples each) 14 MiB, the 30 of the confound sweep and the
    # three speaking-rate runs of Chapters 11 and 12 about 10 MiB, the three conditional
    # maze planners of Chapter 9 (two sets of 4,000 plans each) 3 MiB, the nine unpinned maze
    # models of Chapter 10 (8,000 paths of 32 x 2 values each) 9 MiB, the pendulum's three
    # second-try coordinates runs of Chapter 10 (4,000 samples each) 4.5 MiB.
    assert size < 85 * 2**20, f"the store holds {size / 2**20:.1f} MiB; the budget is 85 MiB"


@pytest.mark.skipif(os.environ.get("PHYSMIS_SKIP_WHEEL") == "1", reason="PHYSMIS_SKIP_WHEEL=1")
def test_wheel_installs_and_loads_everything_outside_the_repository(tmp_path):
    """As Colab does: install the wheel (not the repository) and read every shipped file."""
    # Built from a copy: setuptools reuses a build/ folder beside pyproject.toml, and a stale one
    # would put files in the wheel that the repository no longer has.
    source = tmp_path / "source"
    shutil.copytree(ROOT / "physmis_edu", source / "physmis_edu",
                    ignore=shutil.ignore_patterns("__pycache__", ".*.tmp"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(source)], check=True)
    env_dir = tmp_path / "env"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    wheel = next(wheels.glob("physmis_edu-*.whl"))
    # Every data file a chapter may read ships in the wheel, not only the store's.
    data = ROOT / "physmis_edu" / "data"
    shipped = set(zipfile.ZipFile(wheel).namelist())
    missing = [str(p.relative_to(ROOT)) for p in data.rglob("*")
               if p.is_file() and not p.name.startswith(".")
               and p.relative_to(ROOT).as_posix() not in shipped]
    assert not missing, f"not in the wheel (add them to package-data): {missing}"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                    "-q", str(wheel)], check=True)
    script = """
import json, physmis_edu, sys
from pathlib import Path
from physmis_edu import zoo
from physmis_edu.panel import RESULTS_DIR
assert 'site-packages' in physmis_edu.__file__ and '{root}' not in physmis_edu.__file__
for name in zoo.entries():
    task, model_variant, seed = name.split('.')
    model, _, variant = model_variant.partition('-')
    run = zoo.load(task, model, int(seed[1:]), variant=variant)
    run.train
results = sorted(RESULTS_DIR.glob('*.json'))
for path in results:
    json.loads(path.read_text())
print(len(zoo.entries()), len(results), physmis_edu.__file__)
""".format(root=ROOT)
    done = subprocess.run([str(python), "-c", script], cwd=tmp_path, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    runs, results, where = done.stdout.split()
    assert int(runs) == len(zoo.entries())
    assert int(results) == len(list((ROOT / "physmis_edu" / "data" / "panel").glob("*.json")))
    assert str(env_dir) in where


def test_atomic_write_leaves_normal_permissions_and_no_temporary(tmp_path):
    target = tmp_path / "a.json"
    store.write_json(target, {"x": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]

    def broken(handle):
        handle.write(b"partial")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        store.write_atomic(target, broken)
    assert json.loads(target.read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
