"""The coordinate search of Chapter 10: predicted drift of every candidate representation, and
the drift measured on a cheap proxy trained in each.

    python benchmarks/coordinate_search.py [--tasks logistic-chaotic,pendulum,maze] [--measure]

For each task, the white-noise kernel is calibrated without c on the store's baseline
DiffusionMLP (seed 0) in its model coordinates, and every candidate of
``physmis_edu.mitigations.default_candidates`` gets its predicted TV and out-of-range mass
(seconds, no training). With ``--measure``, the same model class is trained in each candidate
at a reduced budget (the cheap proxy: ``PROXY_STEPS`` of the 20,000 book steps, seed 0),
4,000 samples are drawn and their TV is measured. Results go to
``physmis_edu/data/mitigations/coordinate_search.json`` (package data, read by Chapter 10),
written after every candidate, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from physmis_edu import mitigations as mit
from physmis_edu._io import write_atomic
from physmis_edu.metrics import drift_report, spearman
from physmis_edu.zoo import catalog, checks, store

OUT = (Path(mit.__file__).resolve().parent.parent / "data" / "mitigations"
       / "coordinate_search.json")
MODEL = "DiffusionMLP"
PROXY_STEPS = {"logistic-chaotic": 10_000, "pendulum": 5_000, "maze": 5_000}
N_SAMPLES = 4_000


def _label(rep) -> str:
    return repr(rep)


def _save(results: dict) -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(OUT, lambda f: f.write(json.dumps(results, indent=1).encode()))


def predict(task_key: str) -> dict:
    run = store.load(task_key, MODEL, 0)
    tick = time.perf_counter()
    seed = catalog.DATA_SEEDS[task_key]
    cal = mit.calibrate_in_model_coordinates(run.train, run.samples,
                                             rng=np.random.default_rng([seed, 7]))
    ranked = mit.rank_representations(run.task, mit.default_candidates(run.task), run.train,
                                      cal.kernel, rng=np.random.default_rng(2))
    return dict(sigma=cal.scale, seconds=time.perf_counter() - tick, baseline=run.name,
                candidates={_label(c.representation): dict(
                    spec=mit.representation_to_dict(c.representation),
                    predicted_tv=c.predicted_tv, predicted_outside=c.predicted_outside)
                    for c in ranked})


def measure(task_key: str, spec: dict) -> dict:
    import torch

    from physmis_edu.models import model_classes

    torch.set_num_threads(2)
    run = store.load(task_key, MODEL, 0)
    rep = mit.representation_from_dict(spec)
    config = dict(catalog.BOOK_CONFIGS[MODEL], train_steps=PROXY_STEPS[task_key])
    tick = time.perf_counter()
    model = mit.Represented(model_classes()[MODEL](**config, seed=0, progress=False), rep)
    model.fit(run.train)
    seconds = time.perf_counter() - tick
    x = model.sample(N_SAMPLES, rng=np.random.default_rng([0, 3]))
    report = drift_report(run.task.measure(x), run.task.prior, n_boot=100, rng=0)
    ref = checks.statistics(run.task, run.fresh, run.train)
    verdict = checks.sample_checks(run.task, x, run.train, run.fresh, ref)
    return dict(measured_tv=report.tv, measured_tv_ci=list(report.tv_ci),
                measured_outside=report.out_of_support + report.n_failed / report.n,
                null_tv99=report.null_tv99, passed=bool(verdict["passed"]),
                nn_ratio=verdict["nn_ratio"], residual=verdict.get("residual"),
                proxy_steps=PROXY_STEPS[task_key], train_seconds=seconds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="logistic-chaotic,pendulum,maze")
    ap.add_argument("--measure", action="store_true", help="train the cheap proxies too")
    args = ap.parse_args()
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    for task_key in args.tasks.split(","):
        if task_key not in PROXY_STEPS:
            raise SystemExit(f"--tasks: each task must be one of {sorted(PROXY_STEPS)}; "
                             f"got {task_key!r}")
        fresh = predict(task_key)
        # Earlier measurements are kept for the same map, matched by value: a label changes when
        # a class gains a parameter whose default leaves the map as it was.
        old = [(mit.representation_from_dict(row["spec"]), row)
               for row in results.get(task_key, {}).get("candidates", {}).values()]
        for row in fresh["candidates"].values():
            rep = mit.representation_from_dict(row["spec"])
            before = next((o for r, o in old if r == rep), {})
            row.update({k: v for k, v in before.items() if k.startswith("measured")
                        or k in ("passed", "nn_ratio", "residual", "proxy_steps",
                                 "train_seconds", "null_tv99")})
        results[task_key] = dict(fresh, model=MODEL,
                                 book_steps=catalog.BOOK_CONFIGS[MODEL]["train_steps"])
        _save(results)
        print(f"\n{task_key}: white noise sigma = {fresh['sigma']:.4f} (model coordinates)")
        for label, row in results[task_key]["candidates"].items():
            if args.measure and "measured_tv" not in row:
                row.update(measure(task_key, row["spec"]))
                _save(results)
            got = (f"measured {row['measured_tv']:.3f} "
                   f"[{row['measured_tv_ci'][0]:.3f}, {row['measured_tv_ci'][1]:.3f}] "
                   f"checks {'pass' if row['passed'] else 'FAIL'} {row['train_seconds']:.0f} s"
                   if "measured_tv" in row else "")
            print(f"  {label:72s} predicted {row['predicted_tv']:.3f}  {got}", flush=True)
        rows = [r for r in results[task_key]["candidates"].values() if "measured_tv" in r]
        if len(rows) >= 3:
            rho = spearman([r["predicted_tv"] for r in rows], [r["measured_tv"] for r in rows])
            results[task_key]["spearman_predicted_measured"] = rho
            _save(results)
            print(f"  Spearman(predicted, measured) over {len(rows)} candidates: {rho:.2f}")


if __name__ == "__main__":
    main()
