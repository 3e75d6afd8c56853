"""When does the drift arise? Eight confounds, one at a time (introduced in Chapter 11).

A *confound* is one factor varied around a reference run of the store: training length, model
size, dataset size, sampling steps, architecture, chaoticity of the rule, conditioning of the
recovery and prior shape. Each level of a factor (an *arm*) is one trained configuration, three
seeds of it. Every arm answers two questions:

* Does the drift persist? Each seed's TV with its 95% bootstrap interval against the 99th
  percentile of the finite-sample null at the same number of samples.
* Does the kernel still predict it? The white-noise kernel of Chapter 6, calibrated on each run
  without ``c`` (nearest-training-neighbour distances), scored by inside-range Pearson and the
  explained fraction, read against the *ceiling*: how well one seed's drift predicts another's.

The runs are trained into the store (``python -m physmis_edu.zoo build``); the scores are
computed by :func:`score_all` and shipped as ``data/confounds/confounds.json``
(``benchmarks/confounds.py`` writes it), which Chapter 11 loads with :func:`load_scores`.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ._io import jsonable, write_text_atomic
from .metrics import _finite_mean

SCORES_PATH = Path(__file__).parent / "data" / "confounds" / "confounds.json"
SCORES_FORMAT = "physmis-confounds"
SCORES_VERSION = 1
RECOVERIES = ("default", "angles")


@dataclass(frozen=True)
class Arm:
    """One level of one confound (Chapter 11): a store run (task, model class, variant) over
    seeds, recovered with the task's own recovery (``'default'``) or, for the double pendulum,
    from the angles alone (``'angles'``, the ill-conditioned recovery of Chapter 8)."""

    confound: str
    level: str
    task: str
    model: str
    variant: str = ""
    recovery: str = "default"

    def __post_init__(self):
        if self.recovery not in RECOVERIES:
            raise ValueError(f"recovery must be one of {RECOVERIES}; got {self.recovery!r}")
        if self.recovery == "angles" and self.task != "pendulum":
            raise ValueError(f"recovery='angles' exists for the double pendulum only; got task "
                             f"{self.task!r}")

    def run_name(self, seed: int) -> str:
        variant = f"-{self.variant}" if self.variant else ""
        return f"{self.task}.{self.model}{variant}.s{seed}"


def _arms() -> dict[str, list[Arm]]:
    chaotic = "logistic-chaotic"
    classes = ("DiffusionMLP", "DiffusionUNet", "Transformer", "VAE")
    arms = {
        "training length": [Arm("training length", f"{m}, book budget", chaotic, m)
                            for m in classes]
        + [Arm("training length", f"{m}, 3x budget", chaotic, m, "long")
           for m in ("DiffusionMLP", "VAE", "Transformer")],
        "model size": [Arm("model size", f"hidden width {w}", chaotic, "DiffusionMLP", v)
                       for w, v in ((64, "hidden64"), (256, ""))],
        "dataset size": [Arm("dataset size", f"{n:,} training trajectories", chaotic,
                             "DiffusionMLP", v)
                         for n, v in ((2_000, "data2k"), (10_000, ""), (40_000, "data40k"))],
        "sampling steps": [Arm("sampling steps", f"{t} diffusion steps", chaotic, "DiffusionMLP",
                               v)
                           for t, v in ((10, "diffsteps10"), (50, ""), (200, "diffsteps200"))],
        "architecture": [Arm("architecture", m, chaotic, m) for m in classes],
        "chaoticity": [Arm("chaoticity", f"{m}, {label}", task, m)
                       for m in classes
                       for task, label in (("logistic-periodic", "r in [2.8, 3.4]"),
                                           (chaotic, "r in [3.6, 4.0]"))],
        "recovery conditioning": [Arm("recovery conditioning", f"{m}, {label}", "pendulum", m,
                                      recovery=rec)
                                  for m in ("DiffusionMLP", "VAE")
                                  for rec, label in (("default", "angles and velocities"),
                                                     ("angles", "angles alone"))],
        "prior shape": [Arm("prior shape", f"{shape} prior", task, "DiffusionMLP")
                        for shape, task in (("uniform", chaotic), ("peaked", "logistic-peaked"),
                                            ("skewed", "logistic-skewed"))],
    }
    return arms


CONFOUNDS: dict[str, list[Arm]] = _arms()


def arms(confound: str | None = None) -> list[Arm]:
    """The arms of one confound (Chapter 11), or of all of them; bad names are named."""
    if confound is None:
        return [a for group in CONFOUNDS.values() for a in group]
    if confound not in CONFOUNDS:
        raise ValueError(f"confound must be one of {list(CONFOUNDS)}; got {confound!r}")
    return list(CONFOUNDS[confound])


class _AnglesOnly:
    """The double pendulum's energy recovered from the angles alone (finite-difference
    velocities), applied to trajectories in the task's (sin, cos, omega) representation."""

    def __init__(self, task):
        self.task = task
        self.prior, self.lo, self.hi = task.prior, task.lo, task.hi

    def measure(self, x) -> np.ndarray:
        return self.task.recover_from_angles(self.task.angles_of(x)).values


def _recovery(task, recovery: str):
    return _AnglesOnly(task) if recovery == "angles" else task


def score_run(task: str, model: str, seed: int, variant: str = "", recovery: str = "default",
              root=None, rng_seed: int = 0) -> dict:
    """One run's drift, checks and white-noise kernel agreement under one recovery
    (Chapter 11). Also returns the shifts ``dq = q - p`` of the recovered histogram and
    ``dq_predicted`` of the kernel's (20 bins and the two overflow bins), and the run's
    convergence curve."""
    from .zoo import store

    run = store.load(task, model, seed, variant, root=root)
    return _score(run, seed, recovery, rng_seed)[0]


def _score(run, seed: int, recovery: str, rng_seed: int = 0) -> tuple[dict, np.ndarray]:
    """:func:`score_run`'s cell for a loaded run, and the recovered values it was made from."""
    import torch

    from .kernels import Gaussian, agreement, calibrate, predict_recovered
    from .metrics import drift_report, prior_probs, recovered_histogram

    torch.set_num_threads(1)
    measured = _recovery(run.task, recovery)
    values = measured.measure(run.samples)
    report = drift_report(values, run.task.prior, bins=20, n_boot=200,
                          rng=np.random.default_rng([rng_seed, seed, 0]))
    fresh = measured.measure(run.fresh)
    fresh_report = drift_report(fresh, run.task.prior, bins=20, n_boot=50,
                                rng=np.random.default_rng([rng_seed, seed, 3]))
    finite = np.isfinite(run.samples).all(axis=(1, 2))
    cal = calibrate(Gaussian, run.train, run.samples[finite],
                    rng=np.random.default_rng([rng_seed, seed, 1]))
    predicted = predict_recovered(measured, cal.kernel, run.train,
                                  rng=np.random.default_rng([rng_seed, seed, 2]))
    agr = agreement(run.task.prior, predicted, values, ceiling=False)
    hist = recovered_histogram(values, run.task.lo, run.task.hi, 20)
    hist_predicted = recovered_histogram(predicted, run.task.lo, run.task.hi, 20)
    p = prior_probs(run.task.prior, 20)  # with the two overflow bins, where p is zero
    checks = run.meta["checks"]
    cell = jsonable(dict(
        name=run.name, spec_hash=run.meta["spec_hash"], seed=seed, recovery=recovery,
        n_samples=int(run.samples.shape[0]),
        train_steps=run.spec.config["train_steps"], n_train=run.spec.n_train,
        n_parameters=run.meta.get("n_parameters"), train_seconds=run.meta["train_seconds"],
        tv=report.tv, tv_ci=list(report.tv_ci), null_tv99=report.null_tv99, w1=report.w1,
        outside=report.out_of_support, failed=report.n_failed / len(values),
        fresh_tv=fresh_report.tv, fresh_null_tv99=fresh_report.null_tv99,
        passed=bool(checks["passed"]), failed_checks=list(checks.get("failed", [])),
        kernel=dict(sigma=cal.scale, inside_pearson=agr.inside_pearson,
                    explained_fraction=agr.explained_fraction),
        dq=(hist.probs - p).tolist(), dq_predicted=(hist_predicted.probs - p).tolist(),
        curve=[dict(step=pt["step"], tv=pt["tv"], null_tv99=pt["null_tv99"],
                    passed=bool(pt["passed"])) for pt in run.meta.get("curve", [])]))
    return cell, values


def _pairwise_ceiling(prior, values_by_seed: list) -> dict:
    """Seed-to-seed agreement: each seed's recovered values as the "prediction" of each other
    seed's, averaged over ordered pairs (Chapter 6's ceiling)."""
    from .kernels import agreement

    pearsons, efs = [], []
    for i, j in itertools.permutations(range(len(values_by_seed)), 2):
        agr = agreement(prior, values_by_seed[i], values_by_seed[j], ceiling=False)
        pearsons.append(agr.inside_pearson)
        efs.append(agr.explained_fraction)
    return dict(inside_pearson=_finite_mean(pearsons), explained_fraction=_finite_mean(efs))


def score_arm(arm: Arm, seeds=(0, 1, 2), root=None) -> dict:
    """Every seed of one arm (:func:`score_run`) and the arm's summary: the drift's range over
    seeds, whether every seed is clear of the null (lower 95% bound above the null's 99th
    percentile), the mean kernel agreement and the seed-to-seed ceiling (Chapter 11)."""
    from .zoo import store

    if not isinstance(arm, Arm):
        raise ValueError(f"arm must be an Arm; got {type(arm).__name__}")
    seeds = tuple(seeds)
    if len(seeds) < 2:
        raise ValueError(f"seeds must hold at least two seeds (the ceiling compares seeds); "
                         f"got {seeds!r}")
    # Each run is loaded (and its files verified) once, and recovered once.
    runs = [store.load(arm.task, arm.model, s, arm.variant, root=root) for s in seeds]
    cells, values = zip(*(_score(run, s, arm.recovery) for run, s in zip(runs, seeds)))
    return summarise(arm, list(cells), _pairwise_ceiling(runs[0].task.prior, values))


def summarise(arm: Arm, cells: list, ceiling: dict) -> dict:
    """An arm's row from its seeds' cells (see :func:`score_arm`)."""
    tv = [c["tv"] for c in cells]
    kernel_p = [c["kernel"]["inside_pearson"] for c in cells]
    kernel_ef = [c["kernel"]["explained_fraction"] for c in cells]
    return jsonable(dict(
        arm=asdict(arm), cells=cells, seeds=[c["seed"] for c in cells],
        tv_mean=float(np.mean(tv)), tv_min=float(min(tv)), tv_max=float(max(tv)),
        null_tv99=float(max(c["null_tv99"] for c in cells)),
        clear_of_null=all(c["tv_ci"][0] > c["null_tv99"] for c in cells),
        outside_mean=float(np.mean([c["outside"] for c in cells])),
        passed=sum(c["passed"] for c in cells),
        kernel_pearson=_finite_mean(kernel_p), kernel_ef=_finite_mean(kernel_ef),
        ceiling_pearson=ceiling["inside_pearson"], ceiling_ef=ceiling["explained_fraction"]))


def _key(arm) -> tuple:
    arm = arm if isinstance(arm, dict) else asdict(arm)
    return arm["task"], arm["model"], arm["variant"], arm["recovery"]


def _still_current(row: dict, seeds, root) -> bool:
    """Was ``row`` scored on these seeds from the runs the store holds now?"""
    from .zoo import store

    runs = store.read_manifest(store.root_dir(root))["runs"]
    return [c["seed"] for c in row["cells"]] == list(seeds) and all(
        c.get("spec_hash") is not None and c["name"] in runs
        and runs[c["name"]]["spec_hash"] == c["spec_hash"] for c in row["cells"])


def score_all(confounds=None, seeds=(0, 1, 2), root=None, jobs: int = 1,
              progress: bool | None = None, reuse: dict | None = None) -> dict:
    """Score every arm of ``confounds`` (default: all eight), dispatched through joblib with
    ``jobs`` workers (Chapter 11). Returns the JSON document :func:`load_scores` reads.
    ``reuse``: an earlier document whose rows are kept, not rescored, where every seed's run is
    still the one the store holds (same name and spec hash)."""
    from joblib import Parallel, delayed

    from ._io import progress_disabled

    names = list(CONFOUNDS) if confounds is None else list(confounds)
    chosen = [a for name in names for a in arms(name)]
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer; got {jobs!r}")
    # An arm may appear under two confounds (the book's DiffusionMLP is every sweep's centre):
    # score each distinct (run, recovery) once.
    keyed = {_key(a): a for a in chosen}
    scored = {}
    for row in (reuse or {}).get("rows", []):
        if _key(row["arm"]) in keyed and _still_current(row, seeds, root):
            scored[_key(row["arm"])] = row
    todo = {k: a for k, a in keyed.items() if k not in scored}
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc="confound arms", disable=progress_disabled(progress))
    parallel = Parallel(n_jobs=jobs, return_as="generator")
    for key, row in zip(todo, parallel(delayed(score_arm)(a, seeds, root)
                                       for a in todo.values())):
        scored[key] = row
        bar.update(1)
    bar.close()
    rows = []
    for a in chosen:
        row = dict(scored[_key(a)])
        row["arm"] = asdict(a)
        rows.append(row)
    return dict(format=SCORES_FORMAT, version=SCORES_VERSION, seeds=list(seeds),
                confounds=names, rows=rows)


def merge_scores(old: dict, new: dict) -> dict:
    """``new``'s rows, plus the rows of ``old`` for every confound ``new`` did not score, in
    the order of :data:`CONFOUNDS` (Chapter 11): rescoring one confound keeps the others."""
    if old.get("seeds") != new.get("seeds"):
        raise ValueError(f"cannot merge scores over different seeds: {old.get('seeds')} and "
                         f"{new.get('seeds')}")
    names = [n for n in CONFOUNDS if n in old["confounds"] or n in new["confounds"]]
    rows = [r for n in names
            for r in (new if n in new["confounds"] else old)["rows"]
            if r["arm"]["confound"] == n]
    return dict(new, confounds=names, rows=rows)


def write_scores(document: dict, path=SCORES_PATH) -> Path:
    """Write :func:`score_all`'s document atomically (Chapter 11)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(jsonable(document), indent=1, sort_keys=True) + "\n")
    return path


def load_scores(path=SCORES_PATH) -> dict:
    """The shipped confound scores (Chapter 11), checked for format and version."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no confound scores at {path}; write them with "
                                "`python benchmarks/confounds.py`")
    doc = json.loads(path.read_text())
    if doc.get("format") != SCORES_FORMAT or doc.get("version") != SCORES_VERSION:
        raise ValueError(f"{path} is not a {SCORES_FORMAT} v{SCORES_VERSION} file; got format "
                         f"{doc.get('format')!r} v{doc.get('version')!r}")
    return doc


def rows_for(document: dict, confound: str) -> list:
    """The rows of one confound in a scores document, in the arms' order."""
    if confound not in CONFOUNDS:
        raise ValueError(f"confound must be one of {list(CONFOUNDS)}; got {confound!r}")
    return [r for r in document["rows"] if r["arm"]["confound"] == confound]


def markdown_confound(rows: list) -> str:
    """One confound's table (Chapter 11): TV per seed against the null, out-of-range mass,
    checks passed, and the kernel's agreement beside the seed-to-seed ceiling."""
    fmt = lambda v, spec=".2f": "n/a" if v is None else format(v, spec)  # noqa: E731
    lines = ["| level | TV per seed | null99 | clear | outside | checks | kernel r | "
             "ceiling r | kernel EF | ceiling EF |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        tvs = ", ".join(format(c["tv"], ".3f") for c in r["cells"])
        lines.append(
            f"| {r['arm']['level']} | {tvs} | {r['null_tv99']:.3f} | "
            f"{'yes' if r['clear_of_null'] else 'no'} | {100 * r['outside_mean']:.1f}% | "
            f"{r['passed']}/{len(r['cells'])} | {fmt(r['kernel_pearson'])} | "
            f"{fmt(r['ceiling_pearson'])} | {fmt(r['kernel_ef'])} | {fmt(r['ceiling_ef'])} |")
    return "\n".join(lines)


def _levels(rows: list) -> list[str]:
    return [r["arm"]["level"] for r in rows]


def plot_overview(document: dict, confounds=None, ncols: int = 4):
    """Figure of Chapter 11: each confound's arms, the TV of every seed (dots) and their mean
    (bar) against the null's 99th percentile (dashed). Returns the figure."""
    import matplotlib.pyplot as plt

    names = list(document["confounds"]) if confounds is None else list(confounds)
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(8.0, 2.6 * nrows), sharey=True,
                             squeeze=False)
    for ax, name in zip(axes.flat, names):
        rows = rows_for(document, name)
        x = np.arange(len(rows))
        ax.bar(x, [r["tv_mean"] for r in rows], color="0.8", width=0.7)
        for i, r in enumerate(rows):
            tvs = [c["tv"] for c in r["cells"]]
            ax.plot(np.full(len(tvs), i), tvs, "o", ms=3.5, color="C0")
            ax.hlines(r["null_tv99"], i - 0.4, i + 0.4, colors="C3", linestyles="--", lw=1.2)
        ax.set_xticks(x, [_short(level) for level in _levels(rows)], rotation=60, ha="right",
                      fontsize=8)
        ax.set_title(name, fontsize=10)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("TV(p, q)")
    fig.tight_layout()
    return fig


def _short(level: str) -> str:
    """Tick labels short enough for a panel a quarter of the page wide."""
    for long, short in (("DiffusionMLP", "D-MLP"), ("DiffusionUNet", "D-UNet"),
                        ("Transformer", "Transf."), (" training trajectories", " train"),
                        (" diffusion steps", " steps"), ("hidden width ", "width "),
                        ("book budget", "1x"), ("3x budget", "3x"),
                        ("angles and velocities", "full state"), ("r in ", "r "),
                        (" prior", "")):
        level = level.replace(long, short)
    return level


def plot_kernel_vs_ceiling(document: dict):
    """Figure of Chapter 11: for every arm, the white-noise kernel's inside-range Pearson (left)
    and explained fraction (right) against the seed-to-seed ceiling. Points under the diagonal
    are drift the seeds agree on and the kernel misses."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.6))
    seen = set()
    for i, name in enumerate(document["confounds"]):
        for r in rows_for(document, name):
            label = name if name not in seen else None
            seen.add(name)
            for ax, (k, c) in zip(axes, (("kernel_pearson", "ceiling_pearson"),
                                         ("kernel_ef", "ceiling_ef"))):
                if r[k] is None or r[c] is None:
                    continue
                ax.plot(r[c], max(r[k], -1.0), "o", color=f"C{i % 10}", ms=5,
                        label=label if ax is axes[0] else None, alpha=0.8)
    for ax, title in zip(axes, ("inside-range Pearson", "explained fraction")):
        ax.plot([-1, 1], [-1, 1], color="0.5", lw=1)
        ax.axhline(0, color="0.8", lw=0.8)
        ax.set_xlim(-0.1, 1.0)
        ax.set_ylim(-1.05, 1.0)
        ax.set_xlabel("seed-to-seed ceiling")
        ax.set_ylabel("white-noise kernel")
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=9, loc="lower right", ncol=1, frameon=False)
    fig.tight_layout()
    return fig


def plot_training_curves(document: dict):
    """Figure of Chapter 11: TV against training step for every class on the chaotic logistic
    map, at the book budget (solid) and at three times it (dashed), each seed a line; the null's
    99th percentile in grey. Filled markers are checkpoints whose samples pass the c-free
    checks."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    rows = rows_for(document, "training length")
    models = list(dict.fromkeys(r["arm"]["model"] for r in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(8.0, 2.8), sharey=True, squeeze=False)
    for ax, model in zip(axes[0], models):
        for r in rows:
            if r["arm"]["model"] != model:
                continue
            style = "--" if r["arm"]["variant"] == "long" else "-"
            color = "C1" if r["arm"]["variant"] == "long" else "C0"
            for c in r["cells"]:
                steps = [pt["step"] for pt in c["curve"]]
                ax.plot(steps, [pt["tv"] for pt in c["curve"]], style, color=color, lw=1,
                        alpha=0.8)
                ok = [pt["passed"] for pt in c["curve"]]
                ax.scatter(steps, [pt["tv"] for pt in c["curve"]], s=14, color=color,
                           facecolors=[color if o else "white" for o in ok], zorder=3)
            ax.axhline(r["null_tv99"], color="0.5", lw=1, ls=":")
        ax.set_xscale("log")
        # Minor ticks of a log axis label themselves and overlap in a quarter-width panel.
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(_short(model), fontsize=10)
        ax.set_xlabel("training step")
    axes[0, 0].set_ylabel("TV(p, q)")
    axes[0, 0].plot([], [], "-", color="C0", label="book budget")
    axes[0, 0].plot([], [], "--", color="C1", label="3x budget")
    axes[0, 0].legend(fontsize=9, frameon=False)
    fig.tight_layout()
    return fig
