"""How much mass moves and how much leaves the range: white noise against noise pulled back
towards the data, on the book-grade runs of the chaotic logistic map (issue 20; notes in
benchmarks/README.md).

White noise calibrated by nearest-neighbour distances gets the shape of the drift inside the
range but sends far too much mass out of it. Two families pull the noise back towards the
training data, as a denoiser's last steps do: ``ProjectedNoise`` (a step towards the plain
mean of the k nearest training trajectories) and ``DenoisedNoise`` (a step towards the ideal
denoiser's output, whose pull vanishes with sigma). This script

1. tunes each family's shape parameters on one run (DiffusionMLP, seed 0) by explained
   fraction: ``(k, pull)`` of ``ProjectedNoise`` with its scale calibrated by
   nearest-neighbour distances (``calibrate``, ``statistic="distances"``),
   ``(k, pull, bandwidth)`` of ``DenoisedNoise`` with sigma chosen by c-free statistics and the
   rule residual (``statistic="quantiles"``, identity included);
2. reports every kernel on every class and seed of the store's logistic runs: white noise
   and ``ProjectedNoise`` calibrated by distances, both pulled families calibrated by
   statistics; inside-range Pearson, explained fraction, predicted and observed
   out-of-range mass; and beside them the seed-to-seed ceiling (seeds 1 and 2 of a class
   predicting each other);
3. runs the perfect-model control (fresh true data in place of the samples) with every
   kernel and calibration of step 2, once: the classes share the training and fresh data;
4. applies the tuned ``DenoisedNoise`` (sigma in training stds, as calibrated on the tune
   run) unchanged to the other classes of the logistic map and to the DiffusionMLP runs of
   the other core tasks: the before-training mode; ``ProjectedNoise`` the same way on the
   other tasks;
5. scores white noise and the tuned ``DenoisedNoise`` (sigma by statistics on each run) on
   the held-out seeds of every class of the other core tasks, with each task's
   perfect-model control and the seed-to-seed ceiling.

    python benchmarks/kernel_mass.py [--quick] [--out FILE.json]

About fifteen minutes on two CPU cores (``--quick``: one class and small grids, about two).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from physmis_edu import zoo
from physmis_edu._io import jsonable, write_text_atomic
from physmis_edu.kernels import (DenoisedNoise, Gaussian, ProjectedNoise, agreement, calibrate,
                                 rule_residual)
from physmis_edu.metrics import null_quantile, prior_probs, recovered_histogram, total_variation

TASK = "logistic-chaotic"
MODELS = ("DiffusionMLP", "DiffusionUNet", "VAE", "Transformer")
PROJECTED_GRID = [dict(k=k, pull=pull) for k in (2, 4, 8, 16)
                  for pull in (0.3, 0.5, 0.7, 0.8, 0.9)]
DENOISED_GRID = [dict(k=k, pull=pull, bandwidth=bw) for k in (4, 8, 16)
                 for pull in (0.8, 0.9, 1.0) for bw in (1.0, 2.0, 4.0)]
TRANSFER_TASKS = ("logistic-periodic", "sine", "toy")
STATS_SIGMAS = list(np.geomspace(0.01, 1.0, 13))
FAMILIES = {"projected": ProjectedNoise, "denoised": DenoisedNoise}


def by_distances(run, family, shape, seed, samples=None):
    """``family(**shape)`` with its scale calibrated by nearest-neighbour distances to
    ``samples`` (default the run's own); white noise when ``family`` is None."""
    train = run.train
    std = float(train.std())
    if family is None:
        factory = Gaussian
    else:
        # calibrate works in the data's units; the families take sigma in training stds.
        def factory(scale):
            return family(sigma=scale / std, **shape).fit(train)
    samples = run.samples if samples is None else samples
    cal = calibrate(factory, train, samples, rng=np.random.default_rng([seed, 1]))
    return cal.kernel, dict(sigma=cal.scale / std)


def by_statistics(run, family, shape, seed, samples=None):
    """``family(**shape)`` with sigma chosen by c-free statistics (nearest-neighbour distances
    and the rule residual) on ``samples`` (default the run's own); the identity is allowed."""
    grid = {"sigma": STATS_SIGMAS, **{name: [value] for name, value in shape.items()}}
    samples = run.samples if samples is None else samples
    fit = calibrate(family, run.train, samples, grid=grid, statistic="quantiles",
                    residual=rule_residual(run.task), rng=np.random.default_rng([seed, 3]),
                    n_perturb=500)
    return fit.kernel, dict(sigma=float(fit.params["sigma"]))


_MEASURED = {}


def measured(run):
    """The recovered values of the run's samples, measured once per run."""
    if run.name not in _MEASURED:
        _MEASURED[run.name] = run.task.measure(run.samples)
    return _MEASURED[run.name]


def scores(run, kernel, seed):
    """Agreement of the kernel's prediction with the run's samples, and its TV to the prior."""
    task = run.task
    predicted = task.measure(kernel.perturb(run.train, np.random.default_rng([seed, 2])))
    agr = agreement(task.prior, predicted, measured(run), ceiling=False)
    tv = total_variation(prior_probs(task.prior, 20),
                         recovered_histogram(predicted, task.lo, task.hi, 20).probs)
    return dict(inside=agr.inside_pearson, ef=agr.explained_fraction, tv=tv,
                out_predicted=agr.oos_predicted, out_observed=agr.oos_observed)


def ceiling(run, other):
    """The seed-to-seed ceiling: run ``other``'s samples as the prediction of ``run``'s."""
    agr = agreement(run.task.prior, measured(other), measured(run), ceiling=False)
    return dict(inside=agr.inside_pearson, ef=agr.explained_fraction,
                out_predicted=agr.oos_predicted, out_observed=agr.oos_observed)


def perfect_model(run, label, family, calibration, shape, calibration_name):
    """The perfect-model control: the kernel calibrated on fresh true data in place of the
    run's samples, its predicted TV to the prior against the finite-sample null."""
    kernel, fitted = calibration(run, family, shape, 0, samples=run.fresh)
    tv = scores(run, kernel, 0)["tv"]
    null99 = null_quantile(run.task.prior, run.train.shape[0], 20, rng=np.random.default_rng(0))
    print(f"  {run.spec.task:17s} {label:9s} ({calibration_name:12s}): sigma "
          f"{fitted['sigma']:.4f}, predicted TV {tv:.3f} against a null of {null99:.3f}: "
          f"{'passes' if tv <= null99 else 'fails'}", flush=True)
    return dict(task=run.spec.task, kernel=label, calibration=calibration_name, **fitted,
                tv=tv, null99=null99)


def line(label, r):
    return (f"{label:40s} sigma {r['sigma']:.4f}  inside {r['inside']:5.2f}  EF {r['ef']:5.2f}  "
            f"out {r['out_predicted']:.3f} / {r['out_observed']:.3f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="DiffusionMLP only, small grids")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    models = MODELS[:1] if args.quick else MODELS
    grids = {"projected": PROJECTED_GRID[6:8] if args.quick else PROJECTED_GRID,
             "denoised": DENOISED_GRID[3:6] if args.quick else DENOISED_GRID}
    tune_calibration = {"projected": by_distances, "denoised": by_statistics}
    results = {"tune": [], "report": [], "perfect_model": [], "transfer": []}

    tune_run = zoo.load(TASK, "DiffusionMLP", 0)
    print(f"1. tuning the shape parameters on {tune_run.name} by explained fraction")
    chosen = {}
    for family_name, grid in grids.items():
        calibration = tune_calibration[family_name]
        for shape in grid:
            kernel, fitted = calibration(tune_run, FAMILIES[family_name], shape, 0)
            r = dict(kernel=family_name, **shape, **fitted, **scores(tune_run, kernel, 0))
            results["tune"].append(r)
            print("  " + line(f"{family_name} {shape}", r), flush=True)
        best = max((r for r in results["tune"] if r["kernel"] == family_name),
                   key=lambda r: r["ef"])
        chosen[family_name] = {name: best[name] for name in grid[0]}
        print(f"  chosen for {family_name}: {chosen[family_name]}", flush=True)

    # (label, family, calibration): white noise and ProjectedNoise as in the panel, by
    # distances; both pulled families by statistics, the calibration that can pick "none".
    kernels = [("white", None, by_distances), ("projected", ProjectedNoise, by_distances),
               ("projected", ProjectedNoise, by_statistics),
               ("denoised", DenoisedNoise, by_statistics)]
    names = {by_distances: "nn distances", by_statistics: "statistics"}

    def shape_of(label):
        return chosen.get(label, {})

    print("\n2. every class and seed (seed 0 of the DiffusionMLP is the tune run)")
    for model in models:
        for seed in (0, 1, 2):
            run = zoo.load(TASK, model, seed)
            for label, family, calibration in kernels:
                kernel, fitted = calibration(run, family, shape_of(label), seed)
                r = dict(model=model, seed=seed, kernel=label, calibration=names[calibration],
                         **fitted, **scores(run, kernel, seed))
                results["report"].append(r)
                print("  " + line(f"{model} s{seed} {label} ({names[calibration]})", r),
                      flush=True)

    print("\n   seed-to-seed ceiling: each held-out seed's samples predict the other's")
    results["ceiling"] = []
    for model in models:
        runs = {seed: zoo.load(TASK, model, seed) for seed in (1, 2)}
        for seed, other in ((1, 2), (2, 1)):
            r = dict(model=model, seed=seed, **ceiling(runs[seed], runs[other]))
            results["ceiling"].append(r)
            print(f"  {model:13s} s{other} predicts s{seed}: inside {r['inside']:5.2f}  "
                  f"EF {r['ef']:5.2f}", flush=True)

    # The store's runs of one task share their training set and fresh data, so the control
    # (which never reads a model's samples) is the same for every class: run it once.
    print("\n3. perfect-model control (fresh true data in place of the samples)")
    for label, family, calibration in kernels:
        results["perfect_model"].append(perfect_model(tune_run, label, family, calibration,
                                                      shape_of(label), names[calibration]))

    print("\n4. before training: parameters of the tune run applied unchanged")
    tuned = {label: next(r for r in results["report"]
                         if r["model"] == "DiffusionMLP" and r["seed"] == 0
                         and r["kernel"] == label and r["calibration"] == calibration)
             for label, calibration in (("projected", "nn distances"),
                                        ("denoised", "statistics"))}
    targets = [(TASK, model, seed) for model in models[1:] for seed in (0, 1, 2)]
    targets += [(task, "DiffusionMLP", seed) for task in TRANSFER_TASKS for seed in (0, 1, 2)]
    for task, model, seed in targets:
        run = zoo.load(task, model, seed)
        for label, family in FAMILIES.items():
            if task == TASK and label == "projected":
                continue  # ProjectedNoise's transfer was measured on other tasks only
            kernel = family(sigma=tuned[label]["sigma"], **chosen[label]).fit(run.train)
            r = dict(task=task, model=model, seed=seed, kernel=label,
                     **scores(run, kernel, seed))
            results["transfer"].append(r)
            print(f"  {task:17s} {model:13s} s{seed} {label:9s}: inside {r['inside']:5.2f}  "
                  f"EF {r['ef']:5.2f}  out {r['out_predicted']:.3f} / "
                  f"{r['out_observed']:.3f}", flush=True)
    print("\n5. the other core tasks: white noise (distances) and DenoisedNoise with the tuned"
          " shape (sigma by statistics) on seeds 1 and 2 of every class, the perfect-model"
          " control of each task, and the seed-to-seed ceiling")
    results["core"] = []
    for task_name in TRANSFER_TASKS if not args.quick else TRANSFER_TASKS[:1]:
        for model in models:
            runs = {seed: zoo.load(task_name, model, seed) for seed in (1, 2)}
            for seed, other in ((1, 2), (2, 1)):
                run = runs[seed]
                for label, family, calibration in (kernels[0], kernels[3]):
                    kernel, fitted = calibration(run, family, shape_of(label), seed)
                    r = dict(task=task_name, model=model, seed=seed, kernel=label,
                             calibration=names[calibration], **fitted,
                             **scores(run, kernel, seed))
                    results["core"].append(r)
                    print("  " + line(f"{task_name} {model} s{seed} {label}", r), flush=True)
                results["core"].append(dict(task=task_name, model=model, seed=seed,
                                            kernel="ceiling", **ceiling(run, runs[other])))
        results["perfect_model"].append(perfect_model(
            zoo.load(task_name, "DiffusionMLP", 0), "denoised", DenoisedNoise, by_statistics,
            chosen["denoised"], names[by_statistics]))
    seconds = time.perf_counter() - started
    print(f"\n{seconds:.0f} s in all")
    if args.out:
        write_text_atomic(args.out, json.dumps(jsonable(dict(results, chosen=chosen,
                                                             seconds=seconds)), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
