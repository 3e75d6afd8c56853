"""The practitioner's audit: `physmis audit` end to end, the importable `audit`, bad input.

Inputs are small (a few hundred trajectories of the store's `sine` task), so each command-line
run takes seconds. Bad input must exit with status 2, name the option, and leave no audit.json.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from physmis_edu.audit import AuditInputError, _EmpiricalPrior, _JointBootstrap, audit
from physmis_edu.metrics import bin_edges, recovered_histogram, wasserstein1
from physmis_edu.zoo.catalog import TASKS

ROOT = Path(__file__).resolve().parents[1]
N = 300
MEASURE_MODULE = '''
import numpy as np

def omega(x):
    """The sinusoid's frequency by the recurrence fit, NaN where it fails."""
    x = np.asarray(x, dtype=float)[:, :, 0]
    mid = x[:, 1:-1]
    with np.errstate(all="ignore"):
        cos = np.sum(mid * (x[:, 2:] + x[:, :-2]), axis=1) / (2 * np.sum(mid * mid, axis=1))
        return np.arccos(np.where(np.abs(cos) <= 1, cos, np.nan))

def always_nan(x):
    return np.full(len(x), np.nan)

def broken(x):
    raise RuntimeError("boom")
'''


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Training set, drifting samples (controls tilted towards lo), fresh true data, bad files."""
    folder = tmp_path_factory.mktemp("audit_data")
    task = TASKS["sine"]()
    rng = np.random.default_rng(0)
    train, _ = task.sample(N, rng=1)
    tilted = task.lo + (task.hi - task.lo) * rng.random(N) ** 2.5
    samples = task.generate(tilted, rng)
    fresh, _ = task.sample(N, rng=2)
    files = {"train": train, "samples": samples, "fresh": fresh,
             "short": samples[:, :16], "zeros": np.zeros_like(samples)}
    nan = samples.copy()
    nan[3, 5, 0] = np.nan
    inf = train.copy()
    inf[0, 0, 0] = np.inf
    files.update(nan=nan, inf=inf)
    paths = {}
    for name, array in files.items():
        paths[name] = folder / f"{name}.npy"
        np.save(paths[name], array)
    paths["two_npz"] = folder / "two.npz"
    np.savez(paths["two_npz"], a=train, b=samples)
    paths["measures"] = folder / "measures.py"
    paths["measures"].write_text(MEASURE_MODULE)
    paths["a_file"] = folder / "a_file.txt"
    paths["a_file"].write_text("not a folder")
    return dict(folder=folder, paths=paths, train=train, samples=samples, fresh=fresh)


def run_cli(*args, cwd=None, script=None):
    command = [script] if script else [sys.executable, "-m", "physmis_edu.cli"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=300)


@pytest.fixture(scope="module")
def cli_report(data, tmp_path_factory):
    """One full command-line audit (task, default prior, kernel on)."""
    out = tmp_path_factory.mktemp("audit_out") / "report"
    p = data["paths"]
    proc = run_cli("audit", "--train", p["train"], "--samples", p["samples"], "--task", "sine",
                   "--out", out, "--seed", 3, "--bins", 10)
    return proc, out


def test_cli_writes_summary_json_and_png(cli_report):
    proc, out = cli_report
    assert proc.returncode == 0, proc.stderr
    assert sorted(f.name for f in out.iterdir()) == ["audit.json", "audit.png"]  # no temp files
    assert (out / "audit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "audit.json").read_text())
    assert report["schema"] == "physmis-audit" and report["version"] == 1
    for key in ("inputs", "histogram", "recovery", "distances", "null", "split_half", "verdict",
                "checks", "kernel", "sensitivity", "notes", "timings_s"):
        assert key in report, key
    bins = report["inputs"]["bins"]
    h = report["histogram"]
    assert len(h["edges"]) == bins + 1
    for key in ("reference", "samples", "train", "shift", "counts_samples", "counts_train"):
        assert len(h[key]) == bins + 2, key
    assert len(h["null_band"]) == 2 and len(h["null_band"][0]) == bins + 2
    assert abs(sum(h["reference"]) - 1) < 1e-9 and abs(sum(h["samples"]) - 1) < 1e-9
    assert report["inputs"]["prior"]["kind"] == "data"
    assert report["inputs"]["prior"]["range_source"] == "task"
    assert report["null"]["kind"].startswith("two-sample")
    # The samples' controls are tilted towards lo: a drift far above the null, mass moved down.
    assert report["verdict"]["drift"] and report["verdict"]["ratio_to_null"] > 1.5
    assert sum(h["shift"][1:4]) > 0 > sum(h["shift"][-4:-1])
    tv = report["distances"]["tv"]
    assert tv["ci"][0] <= tv["value"] <= tv["ci"][1]
    assert report["split_half"]["tv"] < tv["value"]
    # True trajectories pass the c-free checks: the drift is quiet.
    assert report["checks"]["passed"] and report["checks"]["residual"]["applies"]
    k = report["kernel"]
    assert k["sigma"] >= 0 and len(k["predicted"]["q"]) == bins + 2
    assert {"inside_pearson", "explained_fraction", "oos_predicted", "oos_observed"} <= set(
        k["agreement"])
    assert k["perfect_model"]["sigma"] >= 0
    s = report["sensitivity"]
    assert len(s["gain"]) == bins and 1 <= len(s["top_bins"]) <= 3
    assert s["top_bins"][0]["gain"] == max(g for g in s["gain"] if g is not None)
    # The terminal summary: readable, narrow, with the headline figures.
    assert "drift: TV is" in proc.stdout and "null99" in proc.stdout
    assert "most sensitive bins" in proc.stdout and "audit.json" in proc.stdout
    lines = [line for line in proc.stdout.splitlines() if not line.startswith("wrote ")]
    assert max(len(line) for line in lines) <= 88  # the last line names the user's paths


def test_importable_audit_matches_command_line(cli_report, data, capsys):
    """Same inputs and seed: the function returns what the command line wrote."""
    _, out = cli_report
    written = json.loads((out / "audit.json").read_text())
    result = audit(data["train"], data["samples"], task="sine", seed=3, bins=10, progress=True)
    assert "audit" in capsys.readouterr().err  # the tqdm bar goes to stderr
    got = result.to_dict()
    for report in (got, written):
        report.pop("timings_s")
        for key in ("train", "samples"):
            report["inputs"][key].pop("source")
    assert got == written
    assert result.paths == [] and result.drift
    assert result.summary().splitlines()[0].startswith("physmis audit: 300 samples")


def test_measure_function_and_named_prior(data, tmp_path):
    """A user's module:function (found in the working directory) and a uniform prior."""
    p = data["paths"]
    out = tmp_path / "r"
    proc = run_cli("audit", "--train", p["train"], "--samples", p["fresh"], "--measure",
                   "measures:omega", "--prior", "uniform:0.3:1.2", "--no-kernel", "--bins", 10,
                   "--out", out, cwd=data["folder"])
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "audit.json").read_text())
    assert report["inputs"]["measurement"] == {"kind": "function", "name": "measures:omega",
                                               "control": "c", "units": ""}
    assert report["inputs"]["prior"]["kind"] == "uniform" and report["kernel"] is None
    assert report["null"]["kind"].startswith("one-sample")
    assert not report["verdict"]["drift"]  # fresh true data: within the null
    assert not report["checks"]["residual"]["applies"]  # no rule known for a user function
    assert report["recovery"]["train"]["vs_prior"]["tv"] is not None
    assert "kernel: skipped" in proc.stdout


def test_measure_from_file_path_equals_task(data):
    """'path/to/file.py:function' imports too, and the same recovery gives the same audit."""
    p = data["paths"]
    by_file = audit(data["train"], data["samples"], measure=f"{p['measures']}:omega",
                    kernel=False, progress=False, control_range=(0.3, 1.2))
    by_task = audit(data["train"], data["samples"], task="sine", kernel=False, progress=False)
    assert by_file["distances"]["tv"]["value"] == pytest.approx(
        by_task["distances"]["tv"]["value"], abs=1e-9)
    assert by_file["inputs"]["prior"]["range_source"] == "control_range"


def test_console_script_is_installed():
    script = shutil.which("physmis")
    if script is None:
        pytest.skip("the physmis console script is not installed (pip install -e .)")
    proc = run_cli("audit", "--help", script=script)
    assert proc.returncode == 0 and "--samples" in proc.stdout


BAD = {
    "missing file": (["--train", "{folder}/nope.npy"], "--train", "file not found"),
    "mismatched shapes": (["--samples", "{short}"], "--samples", "do not match"),
    "NaN in samples": (["--samples", "{nan}"], "--samples", "NaN"),
    "infinite in train": (["--train", "{inf}"], "--train", "infinite"),
    "fails on every sample (task)": (["--samples", "{zeros}"], "--samples",
                                     "failed on every one"),
    "fails on every sample (function)": (["--measure", "measures:always_nan"], "--measure",
                                         "failed on every one"),
    "measure raises": (["--measure", "measures:broken"], "--measure", "RuntimeError"),
    "unknown task": (["--task", "pendulumm"], "--task", "unknown task"),
    "task shape": (["--task", "logistic-chaotic"], "--task", "L=16"),
    "unknown prior": (["--prior", "gauss:0:1"], "--prior", "unknown prior"),
    "module does not import": (["--measure", "no_such_module_xyz:f"], "--measure",
                               "does not import"),
    "no such function": (["--measure", "measures:nope"], "--measure", "no attribute"),
    "npz needs a key": (["--train", "{two_npz}"], "--train", "name one"),
    "unwritable out": (["--out", "{a_file}/sub"], "--out", "cannot write"),
    "out is a file": (["--out", "{a_file}"], "--out", "not a folder"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_naming_the_argument(case, data, tmp_path):
    changes, option, phrase = BAD[case]
    p = {k: str(v) for k, v in data["paths"].items()}
    p["folder"] = str(data["folder"])
    args = {"--train": p["train"], "--samples": p["samples"], "--task": "sine",
            "--out": str(tmp_path / "out")}
    for flag, value in zip(changes[::2], changes[1::2]):
        args[flag] = value.format(**p)
    if "--measure" in args:
        del args["--task"]
    proc = run_cli("audit", *[v for pair in args.items() for v in pair], cwd=data["folder"])
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    message = proc.stderr.strip().splitlines()[-1]
    assert option in message and phrase in message, message
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.rglob("audit.json")) and not list(tmp_path.rglob("*.png"))
    assert not list(tmp_path.rglob("*.tmp"))


def test_bad_input_from_python_names_the_argument(data):
    with pytest.raises(AuditInputError, match="samples") as err:
        audit(data["train"], data["samples"][:, :16], task="sine")
    assert err.value.argument == "samples" and isinstance(err.value, ValueError)
    with pytest.raises(AuditInputError, match="control_range"):
        audit(data["train"], data["samples"], task="sine", prior="task", control_range="0:1")
    with pytest.raises(AuditInputError, match="bins"):
        audit(data["train"], data["samples"], task="sine", bins=1)
    with pytest.raises(AuditInputError, match="exactly one"):
        audit(data["train"], data["samples"])


def test_true_samples_show_no_drift(data):
    result = audit(data["train"], data["fresh"], task="sine", kernel=False, progress=False)
    assert not result.drift
    assert result["verdict"]["text"].startswith("no drift detectable")


def test_sensitivity_matches_the_gradient_norm(data):
    """The per-bin gain estimates sqrt(mean |grad M|^2) over the bin's training trajectories."""
    from physmis_edu.sensitivity import sensitivity

    task = TASKS["sine"]()
    bins = 10  # about 30 training trajectories per bin: all of them are used
    result = audit(data["train"], data["samples"], task="sine", bins=bins, kernel=False,
                   progress=False)
    x = np.asarray(data["train"], dtype=np.float64)
    values = task.measure(x)
    grad = sensitivity(task, x)
    edges = bin_edges(task.lo, task.hi, bins)
    for j, gain in enumerate(result["sensitivity"]["gain"]):
        members = (values >= edges[j]) & (values < edges[j + 1])
        if members.sum() < 10:
            continue
        exact = np.sqrt(np.mean(grad[members] ** 2))
        assert gain == pytest.approx(exact, rel=0.3), j


def test_joint_bootstrap_statistics_are_exact():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=400), rng.normal(0.3, 1.2, size=250)
    a[:5], b[7] = np.nan, np.nan
    edges = bin_edges(-1, 1, 12)
    joint = _JointBootstrap(a, b, edges)
    ia, ib = rng.integers(0, a.size, a.size), rng.integers(0, b.size, b.size)
    tv, w1 = joint.statistics(np.bincount(ia, minlength=a.size).astype(float),
                              np.bincount(ib, minlength=b.size).astype(float))
    ha, hb = recovered_histogram(a[ia], -1, 1, 12), recovered_histogram(b[ib], -1, 1, 12)
    assert tv == pytest.approx(0.5 * np.abs(ha.probs - hb.probs).sum(), abs=1e-12)
    assert w1 == pytest.approx(wasserstein1(a[ia], b[ib]), rel=1e-9)


def test_empirical_prior_reproduces_the_training_histogram():
    edges = bin_edges(0.0, 2.0, 8)
    inside = np.array([0.1, 0.0, 0.3, 0.2, 0.0, 0.1, 0.2, 0.1])
    prior = _EmpiricalPrior(edges, inside)
    assert np.allclose(prior.bin_probs(edges), inside)
    assert prior.cdf(0.0) == 0.0 and prior.cdf(2.0) == 1.0


def test_import_stays_light():
    code = ("import sys, physmis_edu, physmis_edu.audit, physmis_edu.cli; "
            "print(' '.join(m for m in ('torch', 'matplotlib', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == ""
