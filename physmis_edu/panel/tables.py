"""Leaderboards as data, their text and Markdown renderings, and the shipped results (Chapter 6).

A leaderboard row is a dict: ``kernel`` (its name), ``kind`` (``"kernel"``, ``"reference"`` or
``"routed"``), ``before_training`` (it never trained on the target task), ``cost_fraction`` (a
cheap proxy's share of the expensive model's training steps, else ``None``), ``n`` (cells), the
medians over cells (``pearson``, ``inside_pearson``, ``spearman``, ``ef``, ``ef_ceiling``,
``sign``, ``pm_pass``, ``pm_identity``, ``oos_observed``, ``oos_predicted``, ``tv_observed``),
the three parts of agreement (:func:`decompose`: the shape inside the range is
``inside_pearson``; ``moved_ratio`` and ``oos_ratio`` are the medians over cells of predicted
over observed mass moved inside the range and mass out of range or failed),
90% bootstrap intervals over cells of the headline medians (``pearson_ci``,
``inside_pearson_ci``, ``ef_ci``), and ``per_model`` and ``per_task``: the medians per model
class and per task, ``{"DiffusionMLP": {"pearson": ..., "inside_pearson": ..., "ef": ...}}``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["RESULTS_DIR", "median", "decompose", "leaderboard", "pooled_leaderboard",
           "POOLED_CEILING", "format_leaderboard", "markdown_leaderboard", "read_results",
           "results_files", "KERNEL_KINDS", "best_of_each_kind"]

# The panel's committed results files, shipped as package data so Chapter 6 reads them anywhere
# (Colab installs the package, not the repository).
RESULTS_DIR = Path(__file__).resolve().parents[1] / "data" / "panel"

POOLED_CEILING = "ceiling (tune seed)"
_GROUP_KEYS = ("pearson", "inside_pearson", "ef")


def median(values) -> float:
    """Median of the finite values (``None`` and NaN skipped); NaN when there are none."""
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    return float(np.median(v)) if v.size else float("nan")


def _interval(values, level: float = 0.9, n_boot: int = 2000, seed: int = 0) -> list | None:
    """Percentile bootstrap interval of the median over cells (resampling cells)."""
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if v.size < 2:
        return None
    rng = np.random.default_rng(seed)
    medians = np.median(v[rng.integers(0, v.size, size=(n_boot, v.size))], axis=1)
    tail = 0.5 * (1.0 - level)
    return [float(q) for q in np.quantile(medians, [tail, 1.0 - tail])]


def decompose(score) -> dict:
    """Agreement in three parts (Chapter 6): the shape of the shift inside the range
    (``inside_pearson``), the mass moved inside the range (``moved_predicted``,
    ``moved_observed``: half the summed absolute shift over the bins inside ``[lo, hi]``) and the
    mass out of range or failed (``oos_predicted``, ``oos_observed``), with the ratios predicted
    over observed (``NaN`` where nothing was observed). A kernel can get the shape right and the
    amounts wrong, which the explained fraction alone does not say.
    """
    pred, obs = np.asarray(score.dq_predicted), np.asarray(score.dq_observed)
    moved_pred, moved_obs = 0.5 * np.abs(pred[1:-1]).sum(), 0.5 * np.abs(obs[1:-1]).sum()

    def ratio(a, b):
        return float(a / b) if b > 0 else float("nan")

    return {"inside_pearson": score.inside_pearson, "moved_predicted": float(moved_pred),
            "moved_observed": float(moved_obs), "moved_ratio": ratio(moved_pred, moved_obs),
            "oos_predicted": score.oos_predicted, "oos_observed": score.oos_observed,
            "oos_ratio": ratio(score.oos_predicted, score.oos_observed)}


def _groups(entries, field: str) -> dict:
    """Medians of ``entries`` (dicts with task, model and the _GROUP_KEYS) per value of
    ``field``, in order of first appearance."""
    out = {}
    for value in dict.fromkeys(e[field] for e in entries):
        group = [e for e in entries if e[field] == value]
        out[value] = {k: median(e[k] for e in group) for k in _GROUP_KEYS}
    return out


def _kind(name: str) -> str:
    from .score import is_reference
    from .specs import ROUTED

    if is_reference(name) or name == POOLED_CEILING:
        return "reference"
    if name in ROUTED.values():
        return "routed"
    return "kernel"


def _describe(name: str, specs: dict) -> dict:
    spec = specs.get(name)
    return {"kind": _kind(name),
            "before_training": bool(spec is not None and spec.before_training),
            "cost_fraction": None if spec is None else spec.cost_fraction}


# The ways of obtaining a kernel that Chapter 6 compares, each as a test on a leaderboard row.
KERNEL_KINDS = {
    "calibrated, passes the control": lambda row: row["pm_pass"] == 1,
    "before training": lambda row: bool(row["before_training"]),
    "cheap proxy": lambda row: row["cost_fraction"] is not None,
    "any": lambda row: True,
}


def best_of_each_kind(board: list[dict], key: str = "inside_pearson") -> dict:
    """The kernel row with the highest median ``key`` of each kind in :data:`KERNEL_KINDS`
    (Chapter 6): calibrated on the model's samples and passing the perfect-model control in
    every cell, calibrated before training, a cheap proxy, and of any kind. References and
    routed rows are left out; a kind with no row maps to ``None``."""
    if not board or key not in board[0]:
        raise ValueError(f"board must be a non-empty leaderboard whose rows have {key!r}")
    kernels = [row for row in board if row["kind"] == "kernel"]

    def score(row):
        v = row[key]
        return v if v is not None and np.isfinite(v) else -np.inf

    return {kind: max((r for r in kernels if test(r)), key=score, default=None)
            for kind, test in KERNEL_KINDS.items()}


def leaderboard(scores, seeds=None, specs=()) -> list[dict]:
    """One row per kernel or reference: medians over cells (only ``seeds`` if given), best median
    Pearson first (Chapter 6). ``specs``: the kernel specs scored, which say how each kernel was
    obtained (see the module's docstring for the row's fields)."""
    specs = {s.name: s for s in specs}
    rows = {}
    for s in scores:
        if seeds is None or s.seed in seeds:
            rows.setdefault(s.kernel, []).append(s)
    table = []
    for name, group in rows.items():
        pm = [g.pm_pass for g in group if g.pm_pass is not None]
        parts = [decompose(g) for g in group if g.dq_predicted is not None]
        entries = [{"task": g.task, "model": g.model, "pearson": g.pearson,
                    "inside_pearson": g.inside_pearson, "ef": g.explained_fraction}
                   for g in group]
        row = {"kernel": name, **_describe(name, specs), "n": len(group),
               "pearson": median(g.pearson for g in group),
               "inside_pearson": median(g.inside_pearson for g in group),
               "spearman": median(g.spearman for g in group),
               "ef": median(g.explained_fraction for g in group),
               "ef_ceiling": median(getattr(g, "ef_ceiling", None) for g in group),
               "sign": float(np.mean([g.sign_agree for g in group])),
               "pm_pass": float(np.mean(pm)) if pm else None,
               "pm_identity": float(np.mean([bool(g.pm_identity) for g in group
                                             if g.pm_pass is not None])) if pm else None,
               "oos_observed": median(g.oos_observed for g in group),
               "oos_predicted": median(g.oos_predicted for g in group),
               "tv_observed": median(g.tv_observed for g in group),
               "moved_ratio": median(d["moved_ratio"] for d in parts),
               "oos_ratio": median(d["oos_ratio"] for d in parts),
               "pearson_ci": _interval([g.pearson for g in group]),
               "inside_pearson_ci": _interval([g.inside_pearson for g in group]),
               "ef_ci": _interval([g.explained_fraction for g in group]),
               "per_model": _groups(entries, "model"), "per_task": _groups(entries, "task")}
        table.append(row)
    table.sort(key=lambda r: -np.nan_to_num(r["pearson"], nan=-9))
    return table


def pooled_leaderboard(scores, seeds, reference_seed: int, specs=()) -> list[dict]:
    """Class-level agreement: shifts averaged over ``seeds`` per (task, model class) before
    comparing (Chapter 6).

    A kernel describes what a model class does to the data, so a natural target is the class's
    *expected* drift, not one training run's. For each kernel and (task, model) group, the
    observed shift is the mean of the cells' observed shifts over ``seeds`` and the prediction is
    the mean of the kernel's per-seed predictions; Pearson, inside-range Pearson, Spearman and the
    explained fraction are computed on these means, then the median over groups is taken. The
    reference row :data:`POOLED_CEILING` predicts the same target with the observed shift of
    ``reference_seed`` (the tune seed, never among ``seeds``).
    """
    from ..metrics import pearson, spearman
    from .score import is_reference

    seeds = {int(v) for v in seeds}
    if int(reference_seed) in seeds:
        raise ValueError(f"reference_seed ({reference_seed}) must not be among seeds "
                         f"{sorted(seeds)}")
    specs = {s.name: s for s in specs}
    groups: dict = {}
    reference: dict = {}
    by_cell: dict = {}  # (task, model) -> {seed: observed shift}
    for s in scores:
        if s.dq_observed is None:
            continue
        if s.seed == reference_seed:
            reference.setdefault((s.task, s.model), np.asarray(s.dq_observed))
        if s.seed in seeds and not is_reference(s.kernel):
            groups.setdefault(s.kernel, {}).setdefault((s.task, s.model), {})[s.seed] = s
            by_cell.setdefault((s.task, s.model), {}).setdefault(s.seed, s.dq_observed)
    observed = {key: np.mean(list(dq.values()), axis=0) for key, dq in by_cell.items()
                if set(dq) == seeds}
    rows = {POOLED_CEILING: {key: (reference[key], dq) for key, dq in observed.items()
                             if key in reference}}
    for kernel, by_group in groups.items():
        rows[kernel] = {key: (np.mean([c.dq_predicted for c in cells.values()], axis=0),
                              observed[key])
                        for key, cells in by_group.items()
                        if set(cells) == seeds and cells[min(seeds)].dq_predicted is not None}
    table = []
    for kernel, pairs in rows.items():
        if not pairs:
            continue
        entries = []
        for (task, model), (pred, obs) in pairs.items():
            total = np.abs(obs).sum()
            entries.append({"task": task, "model": model, "pearson": pearson(pred, obs),
                            "inside_pearson": pearson(pred[1:-1], obs[1:-1]),
                            "spearman": spearman(pred, obs),
                            "ef": float(1.0 - np.abs(pred - obs).sum() / total)
                            if total > 0 else float("nan")})
        row = {"kernel": kernel, **_describe(kernel, specs), "n": len(entries)}
        for key in ("pearson", "inside_pearson", "spearman", "ef"):
            row[key] = median(e[key] for e in entries)
        row["per_model"] = _groups(entries, "model")
        row["per_task"] = _groups(entries, "task")
        table.append(row)
    table.sort(key=lambda r: -np.nan_to_num(r["pearson"], nan=-9))
    return table


def _fmt(v, spec: str = "5.2f") -> str:
    width = int(spec.split(".")[0]) if spec[0].isdigit() else 1
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-".center(width)
    return format(v, spec)


def _label(row: dict) -> str:
    """A row's name with how it was obtained: a cheap proxy's cost fraction."""
    cost = row.get("cost_fraction")
    if cost is None:
        return row["kernel"]
    if "(cheap proxy)" in row["kernel"]:
        return row["kernel"].replace("(cheap proxy)", f"(cheap proxy, {cost:.3g} cost)")
    return f"{row['kernel']} ({cost:.3g} cost)"


def _short(model: str, shorts: dict | None) -> str:
    return (shorts or {}).get(model, model)


def format_leaderboard(table: list[dict], shorts: dict | None = None, width: int = 34,
                       columns=("pearson", "inside_pearson", "ef", "ef_ceiling", "pm_pass"),
                       per_model: str | None = "inside_pearson") -> str:
    """A leaderboard as a fixed-width text table (Chapter 6).

    ``shorts``: short names of the model classes for the per-model columns; ``per_model``: which
    median to show per model class (``None``: no per-model columns). Names longer than ``width``
    are cut with an ellipsis. ``-`` marks an undefined value (e.g. no perfect-model control).
    """
    heads = {"pearson": "Pearson", "inside_pearson": "inside", "spearman": "Spear", "ef": "EF",
             "ef_ceiling": "EF max", "sign": "sign", "pm_pass": "PM ok",
             "pm_identity": "PM id", "oos_predicted": "OOS"}
    models = list(table[0]["per_model"]) if table and per_model else []
    head = f"{'kernel':{width}s} {'n':>3s} " + " ".join(f"{heads[c]:>7s}" for c in columns)
    if models:
        head += " | " + " ".join(f"{_short(m, shorts)[:6]:>6s}" for m in models)
    lines = [head, "-" * len(head)]
    for r in table:
        name = _label(r)
        name = name if len(name) <= width else name[:width - 1] + "…"
        line = f"{name:{width}s} {r['n']:3d} " + " ".join(_fmt(r.get(c), "7.2f") for c in columns)
        if models:
            line += " | " + " ".join(_fmt(r["per_model"].get(m, {}).get(per_model), "6.2f")
                                     for m in models)
        lines.append(line)
    return "\n".join(lines)


def markdown_leaderboard(table: list[dict], shorts: dict | None = None,
                         per_model: str | None = "inside_pearson") -> str:
    """A leaderboard as a Markdown table with the headline intervals (Chapter 6)."""
    models = list(table[0]["per_model"]) if table and per_model else []

    def with_ci(r, key):
        ci = r.get(f"{key}_ci")
        text = _fmt(r.get(key), ".2f")
        return text if not ci else f"{text} [{ci[0]:.2f}, {ci[1]:.2f}]"

    head = (["kernel", "kind", "n", "Pearson", "inside", "EF", "EF max", "moved ratio",
             "out ratio", "PM ok"]
            + [_short(m, shorts) for m in models])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table:
        kind = r["kind"]
        if r.get("before_training"):
            kind = "before training"
        elif r.get("cost_fraction") is not None:
            kind = f"cheap proxy ({r['cost_fraction']:.3g} cost)"
        cells = [r["kernel"], kind, str(r["n"]), with_ci(r, "pearson"),
                 with_ci(r, "inside_pearson"), with_ci(r, "ef"), _fmt(r.get("ef_ceiling"), ".2f"),
                 _fmt(r.get("moved_ratio"), ".2f"), _fmt(r.get("oos_ratio"), ".2f"),
                 _fmt(r.get("pm_pass"), ".2f")]
        cells += [_fmt(r["per_model"].get(m, {}).get(per_model), ".2f") for m in models]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def results_files() -> list[str]:
    """The names of the shipped panel results files."""
    return sorted(p.name for p in RESULTS_DIR.glob("*.json"))


def read_results(name: str) -> dict:
    """A shipped panel results file by name, e.g. ``"kernel_panel_book.json"`` (Chapter 6)."""
    path = RESULTS_DIR / name
    if not path.exists():
        raise FileNotFoundError(f"no panel results file {name!r} in {RESULTS_DIR}; shipped: "
                                f"{results_files()}")
    return json.loads(path.read_text())
