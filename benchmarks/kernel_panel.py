"""The kernel benchmark panel of Chapter 6: which data deviation kernel predicts a model's drift?

The command line of :func:`physmis_edu.panel.run_panel`: trains (or loads) every cell task x
model class x seed and its cheap proxies, scores every kernel against the observed drift, prints
the leaderboard and writes JSON.

    python benchmarks/kernel_panel.py [--profile ci|cpu|gpu|book] [--cache DIR]
        [--seeds 0 1 2] [--tune-seed 0] [--jobs 2] [--tasks ...] [--models ...]
        [--no-score-cache] [--proxy-fractions 0.0625 0.125 0.25] [--no-proxy]
        [--results physmis_edu/data/panel/kernel_panel_ci.json]

The ``book`` profile reads the book-grade runs of the store of trained runs
(``physmis_edu.zoo``) instead of training cells, and trains only the cheap proxies:

    python benchmarks/kernel_panel.py --profile book --proxy-fractions 0.125 \\
        --cache benchmarks/out/panel_book --results physmis_edu/data/panel/kernel_panel_book.json

``--cache`` (default ``benchmarks/out/panel_{profile}`` beside this script) holds the trained
cells, the proxies and every kernel score; warm, a run takes seconds. ``--results`` writes the
file Chapter 6 renders: everything but the per-bin shifts of each cell. The full output, with
them, goes to ``{cache}/leaderboard.json``. Measured times: ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# Before numpy loads: one BLAS thread per process. The nearest-neighbour searches of calibration
# are small matrix products; on a shared 2-core machine a multi-threaded OpenBLAS made each ~20x
# slower. The panel parallelises over processes (--jobs) instead.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from physmis_edu import panel  # noqa: E402

HERE = Path(__file__).resolve().parent


def _compact(results: dict) -> dict:
    """The results without the per-bin shifts of every cell (the shipped file stays small)."""
    cells = [{k: v for k, v in c.items() if k not in ("dq_predicted", "dq_observed")}
             for c in results["cells"]]
    return {**results, "cells": cells}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="ci", choices=panel.PROFILES)
    ap.add_argument("--cache", default=None,
                    help="folder for cells, proxies and scores (default "
                    "benchmarks/out/panel_{profile}; the ci profile's is benchmarks/out/panel)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--tune-seed", type=int, default=0)
    ap.add_argument("--tasks", nargs="+", default=None)
    ap.add_argument("--models", nargs="+", default=list(panel.PANEL_MODELS),
                    choices=panel.PANEL_MODELS)
    ap.add_argument("--jobs", type=int, default=2, help="processes (1 torch thread each)")
    ap.add_argument("--bins", type=int, default=20)
    ap.add_argument("--no-score-cache", action="store_true",
                    help="rescore every kernel; neither read nor write {cache}/scores")
    ap.add_argument("--proxy-fractions", type=float, nargs="+",
                    default=list(panel.PROXY_FRACTIONS),
                    help="candidate shares of train_steps for the cheap proxies; with more than "
                    "one, each proxy kernel's share is chosen on the tune seed (median Pearson)")
    ap.add_argument("--no-proxy", action="store_true", help="skip the cheap-proxy kernels")
    ap.add_argument("--out", default=None, help="JSON path (default {cache}/leaderboard.json)")
    ap.add_argument("--results", default=None,
                    help="also write the compact results file a chapter reads here")
    args = ap.parse_args(argv)
    if args.cache is None:
        suffix = "" if args.profile == "ci" else f"_{args.profile}"
        args.cache = HERE / "out" / f"panel{suffix}"
    cells = panel.panel_cells(args.tasks, models=args.models, seeds=args.seeds,
                              profile=args.profile)
    results = panel.run_panel(cells, args.cache, tune_seed=args.tune_seed, jobs=args.jobs,
                              bins=args.bins, proxy_fractions=args.proxy_fractions,
                              proxies=not args.no_proxy, score_cache=not args.no_score_cache,
                              log=lambda text: print(text, flush=True))
    out = Path(args.out) if args.out else Path(args.cache) / "leaderboard.json"
    panel.save_text(out, json.dumps(results, indent=1, default=float))
    print(f"wrote {out}")
    if args.results:
        panel.save_text(args.results, json.dumps(_compact(results), indent=1, default=float))
        print(f"wrote {args.results}")
    return results


if __name__ == "__main__":
    main()
