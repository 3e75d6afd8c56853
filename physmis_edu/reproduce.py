"""The book's headline results, regenerated: ``physmis reproduce`` (README, "Reproducing the
book's results").

Each *cell* is one run of the store's catalog (:data:`physmis_edu.zoo.catalog.SPECS`): a task, a
model class, a seed and, for the mitigation study of Chapters 9 and 10, a mitigation. A cell is
trained at the profile's budget, or with profile ``store`` read from the runs shipped in the
package, and then scored:

* its drift: total variation to the task's prior with a 95% bootstrap interval, against the
  finite-sample null's 99th percentile (Chapter 1);
* the c-free sample checks of Chapter 5;
* the agreement of the white-noise kernel of Chapter 6, calibrated without ``c`` on
  nearest-neighbour distances: inside-range Pearson and explained fraction of the shift;
* for a mitigation, its drift relative to the baseline trained from the same seed (Chapters 9
  and 10). A mitigation cell brings its baseline with it.

Rows aggregate the cells of one task, class and mitigation over seeds.

Resumable: trained runs go into ``OUT/runs`` in the store's format (a run already there with
the same spec is not retrained) and each cell's scores into ``OUT/cells/NAME.json``, so an
interrupted run resumes where it stopped. Training and scoring are dispatched through joblib,
so ``joblib.parallel_config(backend="dask")`` (or Ray's backend) sends the cells to a cluster
without code changes; ``physmis reproduce --backend dask --scheduler ADDRESS`` does that.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

from ._io import jsonable, progress_disabled, writable_folder, write_atomic
from .metrics import _finite_mean

__all__ = ["PROFILES", "ReproduceInputError", "ReproduceResult", "cells_for", "reproduce",
           "scaled_spec", "score_cell", "aggregate", "markdown_table", "plot_rows"]

SCHEMA = "physmis-reproduce"
VERSION = 1
# Bumped when score_cell changes, so that cached cell scores are recomputed.
SCORE_VERSION = 1

# How big each profile's trainings are, relative to the store's book-grade specs:
# ``step_share`` of the optimiser steps (at least MIN_STEPS), ``data_share`` of the training set,
# and at most ``n_samples`` samples (and as many fresh true trajectories for the checks).
# ``gpu`` is the book's own budget; ``store`` trains nothing and reads the shipped runs.
PROFILES = {
    "store": None,
    "ci": dict(step_share=1 / 40, data_share=0.2, n_samples=2_000),
    "cpu": dict(step_share=1 / 4, data_share=1.0, n_samples=4_000),
    "gpu": dict(step_share=1.0, data_share=1.0, n_samples=None),
}
MIN_STEPS = 50
DEFAULT_SEEDS = {"store": (0, 1, 2), "ci": (0,), "cpu": (0, 1, 2), "gpu": (0, 1, 2)}
MITIGATION_LABELS = {"": "none (baseline)", "coords": "kernel-informed coordinates",
                     "coords-second": "kernel-informed coordinates, second choice",
                     "coords-retry": "kernel-informed coordinates, second try",
                     "reweighted": "reweighting", "conditional": "conditioning on c"}


class ReproduceInputError(ValueError):
    """Bad input to :func:`reproduce`; ``argument`` names the parameter at fault."""

    def __init__(self, argument: str, detail: str):
        super().__init__(f"{argument}: {detail}")
        self.argument = argument
        self.detail = detail


@dataclasses.dataclass
class ReproduceResult:
    """What :func:`reproduce` found: ``rows`` (one per task, class and mitigation), ``cells``
    (one per run), the ``report`` written as JSON, and the ``paths`` written."""

    rows: list
    cells: list
    report: dict
    paths: list

    def summary(self) -> str:
        return markdown_table(self.rows)


def _is_mitigation(variant: str) -> bool:
    """A variant of the mitigation study (not a baseline, nor a larger training set)."""
    return bool(variant) and not variant.startswith("data")


def _check_seeds(seeds, profile: str) -> tuple:
    if seeds is None:
        return DEFAULT_SEEDS[profile]
    if isinstance(seeds, str):
        try:
            seeds = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            raise ReproduceInputError("seeds", f"expected comma-separated integers such as "
                                               f"'0,1,2'; got {seeds!r}") from None
    seeds = tuple(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0
                        for s in seeds):
        raise ReproduceInputError("seeds", f"expected one or more non-negative integers; got "
                                           f"{seeds!r}")
    return tuple(sorted(set(int(s) for s in seeds)))


def cells_for(seeds, only: str | None = None) -> list:
    """The catalog's specs with a seed in ``seeds`` whose names match ``only`` (comma-separated
    shell patterns); by default every run except the Transformer's larger training sets
    (``data*`` variants) and the confound sweep of Chapter 11 (studies of their own). A
    mitigation brings the baseline of its seed (and, for reweighting, the run its kernel is
    calibrated on)."""
    from .zoo import build, catalog

    specs = [s for s in catalog.SPECS.values() if s.seed in seeds]
    if not specs:
        raise ReproduceInputError("seeds", f"no run of the catalog has a seed in {list(seeds)}; "
                                           f"its seeds are {list(catalog.SEEDS)}")
    if only is None:
        chosen = [s for s in specs if not s.variant.startswith("data")
                  and s.name not in catalog.CONFOUND_NAMES]
    else:
        try:
            chosen = build.select(specs, only)
        except ValueError:
            raise ReproduceInputError(
                "only", f"{only!r} must be comma-separated patterns matching runs with seeds "
                        f"{list(seeds)}; run names look like "
                        "'logistic-chaotic.DiffusionMLP.s0' or 'pendulum.*-coords.*'") from None
    names = {s.name for s in chosen}
    for spec in list(chosen):
        needed = []
        if _is_mitigation(spec.variant):
            needed.append(dataclasses.replace(spec, variant="").name)
        if spec.reweight is not None:
            needed.append(spec.reweight["calibrated_on"])
        for name in needed:
            if name not in names and name in catalog.SPECS:
                chosen.append(catalog.SPECS[name])
                names.add(name)
    order = list(catalog.SPECS)
    return sorted(chosen, key=lambda s: order.index(s.name))


def scaled_spec(spec, profile: str):
    """``spec`` at the budget of ``profile`` (see :data:`PROFILES`); convergence checkpoints and
    model checkpoints are dropped, since only the final samples are scored."""
    p = PROFILES[profile]
    config = dict(spec.config)
    config["train_steps"] = max(MIN_STEPS, round(spec.config["train_steps"] * p["step_share"]))
    n_samples = spec.n_samples if p["n_samples"] is None else min(spec.n_samples, p["n_samples"])
    n_fresh = spec.n_fresh if p["n_samples"] is None else max(n_samples,
                                                                min(spec.n_fresh, p["n_samples"]))
    return dataclasses.replace(spec, config=config, n_train=round(spec.n_train * p["data_share"]),
                               n_samples=n_samples, n_fresh=n_fresh,
                               n_curve=min(spec.n_curve, n_samples), milestones=(),
                               checkpoint=False)


def score_cell(task: str, model: str, seed: int, variant: str, root, kernel: bool = True,
               rng_seed: int = 0) -> dict:
    """Score one trained run of the store at ``root``: drift, checks and (``kernel``) the
    white-noise kernel's agreement (module docstring)."""
    import torch

    from .kernels import Gaussian, agreement, calibrate, predict_recovered
    from .zoo import store

    torch.set_num_threads(1)
    run = store.load(task, model, seed, variant, root=root)
    tick = time.perf_counter()
    drift, checks = run.meta["drift"], run.meta["checks"]
    cell = dict(
        name=run.name, task=task, model=model, seed=seed, variant=variant,
        spec_hash=run.meta["spec_hash"], score_version=SCORE_VERSION,
        train_steps=run.spec.config["train_steps"], n_train=run.spec.n_train,
        n_samples=int(run.samples.shape[0]), train_seconds=run.meta["train_seconds"],
        device=run.meta["device"], tv=drift["tv"], tv_ci=drift["tv_ci"],
        null_tv99=drift["null_tv99"], w1=drift["w1"], outside=drift["out_of_support"],
        failed=drift["n_failed"] / run.samples.shape[0], passed=bool(checks["passed"]),
        failed_checks=list(checks.get("failed", [])), nn_ratio=checks.get("nn_ratio"),
        kernel=None)
    if not kernel:
        return jsonable(dict(cell, score_seconds=time.perf_counter() - tick))
    values = run.task.measure(run.samples)
    # A sample whose decoding failed (NaN, Chapter 10) has no distance to the training set;
    # it is already counted as a failed recovery in the drift.
    finite = np.isfinite(run.samples).all(axis=(1, 2))
    cal = calibrate(Gaussian, run.train, run.samples[finite],
                    rng=np.random.default_rng([rng_seed, seed, 1]))
    predicted = predict_recovered(run.task, cal.kernel, run.train,
                                  rng=np.random.default_rng([rng_seed, seed, 2]))
    agr = agreement(run.task.prior, predicted, values, ceiling=False)
    cell["kernel"] = dict(sigma=cal.scale, inside_pearson=agr.inside_pearson,
                          explained_fraction=agr.explained_fraction,
                          outside_predicted=agr.oos_predicted,
                          outside_observed=agr.oos_observed)
    return jsonable(dict(cell, score_seconds=time.perf_counter() - tick))


def aggregate(cells: list) -> list:
    """One row per task, model class and mitigation: the cells' scores over seeds, and for a
    mitigation the mean over seeds of its TV divided by the same seed's baseline TV."""
    groups: dict = {}
    for cell in cells:
        groups.setdefault((cell["task"], cell["model"], cell["variant"]), []).append(cell)
    rows = []
    for (task, model, variant), group in groups.items():
        group = sorted(group, key=lambda c: c["seed"])
        row = dict(task=task, model=model, variant=variant,
                   mitigation=MITIGATION_LABELS.get(variant, variant),
                   seeds=[c["seed"] for c in group], tv=[c["tv"] for c in group],
                   tv_ci=[c["tv_ci"] for c in group],
                   null_tv99=max(c["null_tv99"] for c in group),
                   outside=[c["outside"] for c in group],
                   passed=sum(c["passed"] for c in group),
                   passed_per_seed=[c["passed"] for c in group],
                   kernel_inside_pearson=_finite_mean(c["kernel"]["inside_pearson"]
                                                      for c in group if c["kernel"]),
                   kernel_explained_fraction=_finite_mean(c["kernel"]["explained_fraction"]
                                                          for c in group if c["kernel"]),
                   train_steps=group[0]["train_steps"],
                   train_seconds=float(np.mean([c["train_seconds"] for c in group])))
        # A cell whose interval is undefined counts by its estimate.
        row["above_null"] = sum((c["tv"] if c["tv_ci"][0] is None else c["tv_ci"][0])
                                > c["null_tv99"] for c in group)
        row["relative_to_baseline"] = None
        if _is_mitigation(variant):
            base = {c["seed"]: c["tv"] for c in groups.get((task, model, ""), [])}
            ratios = [c["tv"] / base[c["seed"]] for c in group if c["seed"] in base]
            row["relative_to_baseline"] = _finite_mean(ratios)
        rows.append(row)
    # Each class's baseline first, its mitigations under it.
    pairs = list(dict.fromkeys((r["task"], r["model"]) for r in rows))
    variants = list(MITIGATION_LABELS)

    def order(r):
        v = r["variant"]
        return (pairs.index((r["task"], r["model"])),
                variants.index(v) if v in variants else len(variants), v)

    return sorted(rows, key=order)


def _fmt(value, spec: str, variant: str = "") -> str:
    if value is None or not np.isfinite(value):
        return "" if _is_mitigation(variant) else "n/a"
    return format(value, spec)


def markdown_table(rows: list) -> str:
    """The headline table as Markdown, one line per row of :func:`aggregate`."""
    lines = ["| task | model | mitigation | seeds | TV (mean; range) | null99 | above null | "
             "checks | kernel inside r | kernel EF | TV vs baseline |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        tv = (f"{r['tv'][0]:.3f}" if len(r["tv"]) == 1 else
              f"{np.mean(r['tv']):.3f}; {min(r['tv']):.3f}-{max(r['tv']):.3f}")
        rel = ("" if r["relative_to_baseline"] is None
               else f"{r['relative_to_baseline']:.2f}x")
        n = len(r["seeds"])
        lines.append(f"| {r['task']} | {r['model']} | {r['mitigation']} | {n} | {tv} | "
                     f"{r['null_tv99']:.3f} | {r['above_null']}/{n} | {r['passed']}/{n} | "
                     f"{_fmt(r['kernel_inside_pearson'], '.2f', r['variant'])} | "
                     f"{_fmt(r['kernel_explained_fraction'], '.2f', r['variant'])} | {rel} |")
    return "\n".join(lines)


def plot_rows(rows: list, title: str = ""):
    """Drift per row (seeds as dots, hollow where the samples fail the checks; the mean as a
    bar) beside the null's 99th percentile (a black tick); mitigations in orange."""
    from matplotlib.figure import Figure

    labels = [f"{r['task']} {r['model']}" + (f" [{r['variant']}]" if r["variant"] else "")
              for r in rows]
    # A Figure without pyplot: no backend is switched and nothing is left open.
    fig = Figure(figsize=(8, 1.2 + 0.28 * len(rows)), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(rows))[::-1]
    for yi, r in zip(y, rows):
        color = "C1" if r["variant"] else "C0"
        ax.barh(yi, np.mean(r["tv"]), color=color, alpha=0.5, height=0.7)
        for tv, ok in zip(r["tv"], r["passed_per_seed"]):
            ax.plot(tv, yi, "o", ms=5, color=color, mfc=color if ok else "white")
        ax.plot([r["null_tv99"]] * 2, [yi - 0.4, yi + 0.4], color="k", lw=1.5)
    ax.set_yticks(y, labels, fontsize=9)
    ax.set_xlabel("TV of the recovered control to the prior: bar the mean over seeds, dots "
                  "the seeds\n(hollow: fails the sample checks); black: null's 99th percentile",
                  fontsize=9)
    ax.set_title(title, fontsize=10)
    return fig


def _check_out(out) -> Path:
    try:
        return writable_folder(out)
    except ValueError as err:
        raise ReproduceInputError("out", str(err)) from err


def _cached(path: Path, spec_hash: str) -> dict | None:
    try:
        cell = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = cell.get("spec_hash") == spec_hash and cell.get("score_version") == SCORE_VERSION
    return cell if ok else None


def reproduce(profile: str = "ci", seeds=None, only: str | None = None, jobs: int = 1,
              out="physmis-reproduce", device=None, progress: bool | None = None
              ) -> ReproduceResult:
    """Regenerate the book's headline table (module docstring); write ``reproduce.json``,
    ``reproduce.md`` and ``reproduce.png`` into ``out``.

    Parameters
    ----------
    profile : ``'store'`` (score the runs shipped in the package; nothing is trained),
        ``'ci'``, ``'cpu'`` or ``'gpu'`` (train at that budget, see :data:`PROFILES`).
    seeds : seeds to run (a list or ``'0,1,2'``); default: seed 0 for ``ci``, else 0, 1, 2.
    only : comma-separated shell patterns of run names (``'pendulum.*'``); default: every run
        of the catalog except the Transformer's larger training sets.
    jobs : cells trained and scored at once (joblib ``n_jobs``).
    out : output folder; trained runs go into ``out/runs``, cell scores into ``out/cells``.
    device : torch device for training (default: CUDA if available).
    progress : tqdm bars on stderr; ``None``: when stderr is a terminal.

    Raises :class:`ReproduceInputError` naming the argument at fault.
    """
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    from ._validation import check_positive_int
    from .zoo import build, store

    started = time.perf_counter()
    if profile not in PROFILES:
        raise ReproduceInputError("profile", f"expected one of {list(PROFILES)}; got "
                                             f"{profile!r}")
    seeds = _check_seeds(seeds, profile)
    try:
        jobs = check_positive_int(jobs, "jobs")
    except ValueError as err:
        raise ReproduceInputError("jobs", str(err)) from err
    specs = cells_for(seeds, only)
    folder = _check_out(out)
    disabled = progress_disabled(progress)
    # zoo.build takes a flag; with no setting, bars show when stderr is a terminal.
    progress = sys.stderr.isatty() if disabled is None else not disabled

    if profile == "store":
        root = store.DATA_DIR
        missing = [s.name for s in build.pending(specs, root)]
        if missing:
            raise ReproduceInputError(
                "profile", f"profile 'store' reads shipped runs, but these are not shipped "
                           f"(or differ from the catalog): {missing}; choose other --seeds or "
                           "--only, or train them with profile ci, cpu or gpu")
    else:
        root = folder / "runs"
        scaled = [scaled_spec(s, profile) for s in specs]
        # Reweighting calibrates on a baseline's samples, so baselines train first.
        for wave in ([s for s in scaled if s.reweight is None],
                     [s for s in scaled if s.reweight is not None]):
            if wave:
                build.build(wave, root, jobs=jobs, device=device, progress=progress)

    manifest = store.read_manifest(root)
    cells, todo = {}, []
    for spec in specs:
        path = folder / "cells" / f"{spec.name}.json"
        cached = _cached(path, manifest["runs"][spec.name]["spec_hash"])
        if cached is None:
            todo.append(spec)
        else:
            cells[spec.name] = cached
    bar = tqdm(total=len(todo), desc="scoring", disable=not progress, file=sys.stderr)
    scored = Parallel(n_jobs=jobs, return_as="generator_unordered")(
        # The kernel of Chapter 6 perturbs the data's coordinates; a mitigation changes what
        # the model is trained on or in, so its agreement would not score the same kernel.
        delayed(score_cell)(s.task, s.model, s.seed, s.variant, root,
                            kernel=not _is_mitigation(s.variant))
        for s in todo)
    for cell in scored:
        text = json.dumps(cell, indent=1)
        write_atomic(folder / "cells" / f"{cell['name']}.json",
                     lambda handle: handle.write(text.encode()))
        cells[cell["name"]] = cell
        bar.update()
    bar.close()

    ordered = [cells[s.name] for s in specs]
    rows = jsonable(aggregate(ordered))
    report = dict(schema=SCHEMA, version=VERSION, profile=profile, seeds=list(seeds),
                  only=only, created=datetime.datetime.now(datetime.timezone.utc)
                  .isoformat(timespec="seconds"),
                  seconds=time.perf_counter() - started, n_cells=len(ordered),
                  n_scored_now=len(todo), rows=rows, cells=ordered)
    paths = []
    table = markdown_table(rows)
    for name, text in (("reproduce.json", json.dumps(report, indent=1)),
                       ("reproduce.md", f"# Headline results, profile {profile}\n\n{table}\n")):
        write_atomic(folder / name, lambda handle, t=text: handle.write(t.encode()))
        paths.append(folder / name)
    fig = plot_rows(rows, title=f"physmis reproduce, profile {profile}, seeds {list(seeds)}")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    write_atomic(folder / "reproduce.png", lambda handle: handle.write(buffer.getvalue()))
    paths.append(folder / "reproduce.png")
    return ReproduceResult(rows=rows, cells=ordered, report=report, paths=paths)
