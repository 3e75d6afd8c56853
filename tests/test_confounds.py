"""The confound sweep of Chapter 11: arms, scoring, the ceiling, the shipped scores and merging."""

import json

import numpy as np
import pytest

from physmis_edu import confounds as cf
from physmis_edu import zoo
from physmis_edu.zoo import catalog


def test_bad_arms_and_confounds_are_named():
    with pytest.raises(ValueError, match="recovery"):
        cf.Arm("x", "x", "logistic-chaotic", "DiffusionMLP", recovery="velocities")
    with pytest.raises(ValueError, match="double pendulum"):
        cf.Arm("x", "x", "logistic-chaotic", "DiffusionMLP", recovery="angles")
    with pytest.raises(ValueError, match="confound must be one of"):
        cf.arms("learning rate")
    with pytest.raises(ValueError, match="seeds"):
        cf.score_arm(cf.arms("architecture")[0], seeds=(0,))
    with pytest.raises(ValueError, match="jobs"):
        cf.score_all(["architecture"], jobs=0)


def test_eight_confounds_and_every_arm_is_a_catalog_run():
    assert list(cf.CONFOUNDS) == ["training length", "model size", "dataset size",
                                  "sampling steps", "architecture", "chaoticity",
                                  "recovery conditioning", "prior shape"]
    for arm in cf.arms():
        for seed in catalog.SEEDS:
            assert arm.run_name(seed) in catalog.SPECS, arm
    # One factor at a time: each sweep arm differs from the reference run in one field.
    reference = catalog.SPECS["logistic-chaotic.DiffusionMLP.s0"]
    for variant, (changes, spec_changes) in catalog.CONFOUND_VARIANTS.items():
        spec = catalog.SPECS[f"logistic-chaotic.DiffusionMLP-{variant}.s0"]
        differ = {k for k in spec.config if spec.config[k] != reference.config[k]}
        differ |= {k for k in ("n_train",) if getattr(spec, k) != getattr(reference, k)}
        assert differ == set(changes) | set(spec_changes) and len(differ) == 1, variant


def test_confound_runs_are_left_out_of_reproduce_by_default():
    from physmis_edu import reproduce as rp

    names = {s.name for s in rp.cells_for((0,))}
    assert not names & catalog.CONFOUND_NAMES
    assert "logistic-chaotic.DiffusionMLP.s0" in names


def test_prior_shapes_are_the_documented_densities():
    rng = np.random.default_rng(0)
    uniform = zoo.make_task("logistic-chaotic").prior.sample(50_000, rng)
    peaked = zoo.make_task("logistic-peaked").prior.sample(50_000, rng)
    skewed = zoo.make_task("logistic-skewed").prior.sample(50_000, rng)
    assert peaked.std() < 0.7 * uniform.std()
    assert abs(np.median(peaked) - 3.8) < 0.01
    # The ramp rises five-fold: the top tenth of the range holds 0.12 / 0.75 = 0.16 of the mass.
    top = np.mean(skewed > 3.96)
    assert 0.15 < top < 0.17 and np.mean(skewed) > 3.82


def test_pairwise_ceiling_of_identical_seeds_is_perfect():
    prior = zoo.make_task("logistic-chaotic").prior
    values = np.random.default_rng(1).uniform(3.55, 3.9, 4_000)
    ceiling = cf._pairwise_ceiling(prior, [values, values.copy()])
    assert ceiling["inside_pearson"] == pytest.approx(1.0)
    assert ceiling["explained_fraction"] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def scored_run():
    return cf.score_run("logistic-chaotic", "VAE", 1)


def test_score_run_matches_the_store_and_is_deterministic(scored_run):
    run = zoo.load("logistic-chaotic", "VAE", 1)
    assert scored_run["tv"] == pytest.approx(run.meta["drift"]["tv"])
    assert scored_run["outside"] == pytest.approx(run.meta["drift"]["out_of_support"])
    assert scored_run["passed"] == run.checks["passed"]
    assert len(scored_run["dq"]) == len(scored_run["dq_predicted"]) == 22
    assert sum(scored_run["dq"]) == pytest.approx(0.0, abs=1e-9)
    assert [pt["step"] for pt in scored_run["curve"]] == list(run.spec.milestones)
    again = cf.score_run("logistic-chaotic", "VAE", 1)
    assert again["kernel"] == scored_run["kernel"] and again["tv_ci"] == scored_run["tv_ci"]


def test_the_recovery_from_angles_is_accurate_on_true_data():
    task = zoo.make_task("pendulum")
    x, c = task.sample(300, rng=np.random.default_rng(5))
    recovered = cf._AnglesOnly(task).measure(x)
    assert np.nanmax(np.abs(recovered - c) / c) < 0.02


def test_merge_keeps_the_other_confounds_in_order(scored_run):
    arm = cf.arms("architecture")[3]
    row = cf.summarise(arm, [scored_run, dict(scored_run, seed=2)],
                       dict(inside_pearson=0.5, explained_fraction=0.1))
    old = dict(format=cf.SCORES_FORMAT, version=cf.SCORES_VERSION, seeds=[1, 2],
               confounds=["architecture", "prior shape"],
               rows=[row, dict(row, arm=dict(row["arm"], confound="prior shape"))])
    new_row = dict(row, tv_mean=0.5)
    new = dict(old, confounds=["architecture"], rows=[new_row])
    merged = cf.merge_scores(old, new)
    assert merged["confounds"] == ["architecture", "prior shape"]
    assert [r["tv_mean"] for r in merged["rows"]] == [0.5, row["tv_mean"]]
    with pytest.raises(ValueError, match="different seeds"):
        cf.merge_scores(old, dict(new, seeds=[0, 1]))
    assert row["passed"] == 2 * scored_run["passed"]
    assert "| level |" in cf.markdown_confound([row])


def test_scores_round_trip_and_bad_files_are_named(tmp_path, scored_run):
    doc = dict(format=cf.SCORES_FORMAT, version=cf.SCORES_VERSION, seeds=[1],
               confounds=[], rows=[])
    path = cf.write_scores(doc, tmp_path / "sub" / "scores.json")
    assert cf.load_scores(path) == doc
    path.write_text(json.dumps(dict(doc, version=0)))
    with pytest.raises(ValueError, match="physmis-confounds"):
        cf.load_scores(path)
    with pytest.raises(FileNotFoundError, match="benchmarks/confounds.py"):
        cf.load_scores(tmp_path / "missing.json")


def test_shipped_scores_cover_every_arm_and_match_the_store():
    doc = cf.load_scores()
    assert doc["confounds"] == list(cf.CONFOUNDS) and doc["seeds"] == [0, 1, 2]
    assert [r["arm"] for r in doc["rows"]] == [vars(a) for a in cf.arms()]
    for r in doc["rows"]:
        assert [c["seed"] for c in r["cells"]] == [0, 1, 2]
        assert r["tv_mean"] == pytest.approx(np.mean([c["tv"] for c in r["cells"]]))
        if r["arm"]["recovery"] == "default":
            # Scored from the runs as shipped: each TV is the one the store recorded.
            for c in r["cells"]:
                meta = json.loads((zoo.store.DATA_DIR / f"{c['name']}.json").read_text())
                assert c["tv"] == pytest.approx(meta["drift"]["tv"])


def test_score_all_reuses_only_rows_of_unchanged_runs(monkeypatch):
    doc = cf.load_scores()
    calls = []

    def fake_score_arm(arm, seeds, root):
        calls.append(arm)
        row = dict(cf.rows_for(doc, "architecture")[0])
        return dict(row, arm=vars(arm).copy(), tv_mean=-1.0)

    monkeypatch.setattr(cf, "score_arm", fake_score_arm)
    again = cf.score_all(["architecture"], reuse=doc, progress=False)
    assert calls == [] and again["rows"] == cf.rows_for(doc, "architecture")
    stale = json.loads(json.dumps(doc))
    stale_key = stale["rows"][0]["arm"]
    for row in stale["rows"]:  # the same run may be scored under several confounds
        if cf._key(row["arm"]) == cf._key(stale_key):
            row["cells"][1]["spec_hash"] = "retrained"
    again = cf.score_all(["architecture"], reuse=stale, progress=False)
    assert [cf._key(a) for a in calls] == [cf._key(stale_key)]
    assert again["rows"][0]["tv_mean"] == -1.0
