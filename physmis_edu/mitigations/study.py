"""The mitigation study: a baseline and its mitigations, several seeds, one table
(Chapters 9 and 10).

The runs themselves are trained once by ``python -m physmis_edu.zoo build`` (their specs are in
:mod:`physmis_edu.zoo.catalog`, variants ``reweighted``, ``conditional`` and ``coords``) and
ship in the trained-model store; :func:`study_table` reads them and :func:`plot_study` draws
the recovered distributions side by side.
"""

from __future__ import annotations

import numpy as np

from ..runtime import span

__all__ = ["VARIANTS", "STUDY_VARIANTS", "study_table", "plot_study", "markdown_study", "verdict"]

# Store variants of the study, in the order the tables list them, and how each is described.
VARIANTS = {
    "": "baseline",
    "reweighted": "reweighting (Richardson-Lucy on the kernel's transition matrix)",
    "conditional": "conditioning on c, c drawn from the prior",
    "coords": "kernel-informed coordinates",
    "coords-second": "kernel-informed coordinates, the search's second choice",
    "coords-retry": "kernel-informed coordinates, a second try (candidate added to the search)",
}
# The variants every task of the study has (the default of study_table).
STUDY_VARIANTS = ("", "reweighted", "conditional", "coords")


def _runs(task: str, model: str, variant: str, seeds, root):
    from ..zoo import store

    return [store.load(task, model, seed, variant, root=root) for seed in seeds]


def study_table(task: str, model: str, seeds=(0, 1, 2), variants=STUDY_VARIANTS,
                root=None) -> list[dict]:
    """One row per variant of ``task`` x ``model`` in the store: drift and cost over ``seeds``.

    Every run is scored on its first ``n_samples`` samples, the smallest number any of them has
    (TV's finite-sample floor depends on it). ``tv`` counts failed recoveries as misplaced mass
    (``DriftReport.tv_failed``); its interval is that of the finite values' TV, the same number
    when nothing fails. Each row holds ``variant`` (``''`` is the baseline), ``label``, and per
    seed (lists in seed order) ``tv`` with its bootstrap interval ``tv_lo``/``tv_hi``, ``w1``,
    ``outside`` (recovered mass outside the prior's range, failures included), ``passed`` (the
    c-free sample checks of Chapter 5), ``nn_ratio``, ``residual`` and ``train_seconds``;
    ``null_tv99`` (the finite-sample null's 99th percentile) and ``clear_of_baseline``: every
    seed's interval lies below every baseline seed's (``None`` for the baseline itself; an
    undefined interval counts as its estimate).
    """
    from .._validation import check_positive_int

    seeds = tuple(check_positive_int(s, "seeds", minimum=0) for s in seeds)
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"variants must be among {list(VARIANTS)}; got {unknown}")
    from ..metrics import drift_report

    loaded = {variant: _runs(task, model, variant, seeds, root) for variant in variants}
    # Every run is scored on the same number of samples: TV's finite-sample floor depends on it.
    n = min(r.samples.shape[0] for runs in loaded.values() for r in runs)
    rows = []
    for variant, runs in loaded.items():
        drift = [drift_report(r.task.measure(r.samples[:n]), r.task.prior, n_boot=200,
                              rng=np.random.default_rng([r.spec.seed, 9])) for r in runs]
        rows.append(dict(
            variant=variant, label=VARIANTS[variant], seeds=list(seeds), n_samples=n,
            tv=[d.tv_failed for d in drift], tv_lo=[d.tv_ci[0] for d in drift],
            tv_hi=[d.tv_ci[1] for d in drift], w1=[d.w1 for d in drift],
            outside=[d.out_of_support + d.n_failed / d.n for d in drift],
            null_tv99=max(d.null_tv99 for d in drift),
            passed=[bool(r.checks["passed"]) for r in runs],
            nn_ratio=[r.checks["nn_ratio"] for r in runs],
            residual=[r.checks.get("residual") for r in runs],
            train_seconds=[r.meta["train_seconds"] for r in runs],
            conditioning=[r.meta.get("conditioning") for r in runs],
            reweighting=[r.meta.get("reweighting") for r in runs]))
    def bound(row, key):
        # An undefined interval (TV at its noise floor, see DriftReport) falls back on the
        # estimate itself.
        return [tv if np.isnan(b) else b for tv, b in zip(row["tv"], row[key])]

    base = next((row for row in rows if row["variant"] == ""), None)
    for row in rows:
        if row["variant"] == "" or base is None:
            row["clear_of_baseline"] = None
        else:
            row["clear_of_baseline"] = bool(max(bound(row, "tv_hi"))
                                            < min(bound(base, "tv_lo")))
    return rows


def _interval(row: dict, i: int) -> tuple[float, float]:
    """Seed ``i``'s TV interval; at TV's noise floor there is none, and the TV stands in."""
    lo, hi = row["tv_lo"][i], row["tv_hi"][i]
    return (lo, hi) if np.isfinite([lo, hi]).all() else (row["tv"][i], row["tv"][i])


def verdict(rows: list[dict], variant: str) -> str:
    """A mitigation's effect on the drift over every seed, in words (Chapter 9).

    ``rows``: rows of :func:`study_table` (or dicts with ``variant``, ``tv``, ``tv_lo``,
    ``tv_hi`` and ``null_tv99``), the baseline first; ``variant``: the row judged. In order:
    every seed within the null removes the drift; every seed's 95% interval below every
    baseline seed's reduces it; each seed below the same seed's baseline only lowers it;
    every interval above every baseline seed's increases it; anything else does not change it
    clearly.
    """
    if not rows:
        raise ValueError("rows must hold the baseline's row first, then the mitigations'")
    row = next((r for r in rows if r["variant"] == variant), None)
    if row is None:
        raise ValueError(f"variant must be one of {[r['variant'] for r in rows]}; "
                         f"got {variant!r}")
    base = rows[0]
    mine = [_interval(row, i) for i in range(len(row["tv"]))]
    theirs = [_interval(base, i) for i in range(len(base["tv"]))]
    within = sum(tv <= row["null_tv99"] for tv in row["tv"])
    if within == len(row["tv"]):
        return "removes the drift: every seed is within the null"
    if max(hi for _, hi in mine) < min(lo for lo, _ in theirs):
        return ("reduces the drift in every seed, but not to the null" if not within
                else f"reduces the drift in every seed, to within the null in {within}")
    if all(m[1] < b[0] for m, b in zip(mine, theirs)):
        return ("lowers the drift in each seed against the same seed's baseline, but not "
                "clear of the spread between baseline seeds, and not to the null")
    if min(lo for lo, _ in mine) > max(hi for _, hi in theirs):
        return "increases the drift in every seed"
    return "does not change the drift clearly in every seed"


def markdown_study(rows: list[dict]) -> str:
    """The study table as Markdown (for ``glue`` or a note): one line per variant; a column
    over seeds reads ``"lo to hi"`` (:func:`physmis_edu.runtime.span`)."""
    lines = ["| mitigation | TV (per seed) | 95% intervals | W1 | outside | checks passed | "
             "training [s] |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        tvs = ", ".join(f"{v:.3f}" for v in row["tv"])
        # A NaN bound is an interval the bootstrap could not give (metrics.bootstrap_ci).
        cis = ", ".join("undefined" if np.isnan(lo) or np.isnan(hi) else
                        f"[{lo:.3f}, {hi:.3f}]" for lo, hi in zip(row["tv_lo"], row["tv_hi"]))
        lines.append(f"| {row['label']} | {tvs} | {cis} | {span(row['w1'], '.3g')} | "
                     f"{span(row['outside'], '.1%')} | {sum(row['passed'])}/"
                     f"{len(row['passed'])} | {span(row['train_seconds'], '.0f')} |")
    return "\n".join(lines)


def plot_study(task: str, model: str, seed: int = 0, variants=STUDY_VARIANTS, root=None,
               ax=None):
    """The recovered distributions of one seed's baseline and mitigations over the prior and
    its null band (Chapters 9 and 10)."""
    from ..plotting import plot_values
    from ..zoo import catalog

    values = {}
    for variant in variants:
        run = _runs(task, model, variant, (seed,), root)[0]
        values[VARIANTS[variant].split(" (")[0]] = run.task.measure(run.samples)
    return plot_values(values, catalog.make_task(task), ax=ax, rng=np.random.default_rng(0))
