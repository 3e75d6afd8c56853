"""How much mass moves and how much leaves the range: white noise against projected noise on the
book-grade runs of the chaotic logistic map (issue 20; notes in benchmarks/README.md).

White noise calibrated by nearest-neighbour distances gets the shape of the drift inside the
range but sends far too much mass out of it. ``ProjectedNoise`` pulls white noise back
towards the k nearest training trajectories, as a denoiser's last steps do. This script

1. tunes ``(k, pull)`` on one run (DiffusionMLP, seed 0), each scale calibrated without c
   (``calibrate``, nearest-neighbour distances);
2. reports white noise and the tuned family on every class and seed of the store's logistic
   runs: inside-range Pearson, explained fraction, predicted and observed out-of-range mass;
3. runs the perfect-model control (fresh true data in place of the samples) on each class's
   seed 0, with both calibrations: nearest-neighbour distances, and c-free statistics with the
   rule residual (``fit_by_statistics``, identity included);
4. applies the tuned kernel unchanged (scale in training standard deviations) to the
   DiffusionMLP runs of the other core tasks: the before-training mode.

    python benchmarks/kernel_mass.py [--quick] [--out FILE.json]

About ten minutes on one CPU core (``--quick``: one class, about two).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from physmis_edu import zoo
from physmis_edu._io import jsonable, write_text_atomic
from physmis_edu.kernels import (Gaussian, ProjectedNoise, agreement, calibrate,
                                 fit_by_statistics, rule_residual)
from physmis_edu.metrics import null_quantile, prior_probs, recovered_histogram, total_variation

TASK = "logistic-chaotic"
MODELS = ("DiffusionMLP", "DiffusionUNet", "VAE", "Transformer")
TUNE_GRID = [(k, pull) for k in (2, 4, 8, 16) for pull in (0.3, 0.5, 0.7, 0.8, 0.9)]
TRANSFER_TASKS = ("logistic-periodic", "sine", "toy")
STATS_SIGMAS = list(np.geomspace(0.01, 1.0, 13))


def projected(k, pull):
    """A scale -> kernel factory in the data's units, as ``calibrate`` wants: the scale is
    divided by the training std inside ``ProjectedNoise``, so pass it through as sigma / std."""
    def make(train):
        std = float(train.std())
        return lambda scale: ProjectedNoise(sigma=scale / std, pull=pull, k=k).fit(train)
    return make


def white(train):
    return Gaussian


def score(run, factory, seed, samples=None):
    """Calibrate on ``samples`` (default the run's own), predict, compare with the run."""
    train, task = run.train, run.task
    samples = run.samples if samples is None else samples
    cal = calibrate(factory(train), train, samples, rng=np.random.default_rng([seed, 1]))
    predicted = task.measure(cal.kernel.perturb(train, np.random.default_rng([seed, 2])))
    agr = agreement(task.prior, predicted, task.measure(run.samples), ceiling=False)
    return dict(scale=cal.scale, inside=agr.inside_pearson, ef=agr.explained_fraction,
                out_predicted=agr.oos_predicted, out_observed=agr.oos_observed,
                predicted=predicted)


def tv_to_prior(task, values):
    return total_variation(prior_probs(task.prior, 20),
                           recovered_histogram(values, task.lo, task.hi, 20).probs)


def perfect_model(run, factory, seed):
    """TV of the prediction when fresh true data stand in for the samples, and the null."""
    got = score(run, factory, seed, samples=run.fresh)
    return dict(scale=got["scale"], tv=tv_to_prior(run.task, got["predicted"]),
                null99=null_quantile(run.task.prior, run.train.shape[0], 20))


def perfect_model_statistics(run, k, pull, seed):
    """The same control with the scale chosen by c-free statistics (identity allowed)."""
    task, train = run.task, run.train
    out = {}
    for label, samples in (("samples", run.samples), ("perfect_model", run.fresh)):
        fit = fit_by_statistics(ProjectedNoise, {"sigma": STATS_SIGMAS, "pull": [pull], "k": [k]},
                                train, samples, residual=rule_residual(task),
                                rng=np.random.default_rng([seed, 3]))
        values = task.measure(fit.kernel.perturb(train, np.random.default_rng([seed, 2])))
        agr = agreement(task.prior, values, task.measure(run.samples), ceiling=False)
        out[label] = dict(params=fit.params, tv=tv_to_prior(task, values),
                          inside=agr.inside_pearson, ef=agr.explained_fraction)
    out["null99"] = null_quantile(task.prior, train.shape[0], 20)
    return out


def line(label, r):
    return (f"{label:34s} scale {r['scale']:.4f}  inside {r['inside']:5.2f}  EF {r['ef']:5.2f}  "
            f"out {r['out_predicted']:.3f} / {r['out_observed']:.3f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="DiffusionMLP only, small grid")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    models = MODELS[:1] if args.quick else MODELS
    grid = [(4, 0.5), (4, 0.8)] if args.quick else TUNE_GRID
    results = {"tune": [], "report": [], "perfect_model": [], "transfer": []}

    tune_run = zoo.load(TASK, "DiffusionMLP", 0)
    print(f"1. tuning (k, pull) on {tune_run.name}, scale calibrated without c")
    for k, pull in grid:
        r = score(tune_run, projected(k, pull), 0)
        results["tune"].append(dict(k=k, pull=pull, **{n: v for n, v in r.items()
                                                       if n != "predicted"}))
        print("  " + line(f"k {k:2d}, pull {pull}", r), flush=True)
    best = max(results["tune"], key=lambda r: r["ef"])
    k, pull = best["k"], best["pull"]
    print(f"  chosen by explained fraction on the tune run: k = {k}, pull = {pull}")

    print("\n2. every class and seed (seed 0 of the DiffusionMLP is the tune run)")
    for model in models:
        for seed in (0, 1, 2):
            run = zoo.load(TASK, model, seed)
            for name, factory in (("white", white), ("projected", projected(k, pull))):
                r = score(run, factory, seed)
                results["report"].append(dict(model=model, seed=seed, kernel=name,
                                              **{n: v for n, v in r.items()
                                                 if n != "predicted"}))
                print("  " + line(f"{model} s{seed} {name}", r), flush=True)

    print("\n3. perfect-model control (fresh true data in place of the samples)")
    for model in models:
        run = zoo.load(TASK, model, 0)
        for name, factory in (("white", white), ("projected", projected(k, pull))):
            pm = perfect_model(run, factory, 0)
            results["perfect_model"].append(dict(model=model, kernel=name,
                                                 calibration="nn distances", **pm))
            print(f"  {model} {name:9s} nn distances: scale {pm['scale']:.4f}, predicted TV "
                  f"{pm['tv']:.3f} against a null of {pm['null99']:.3f}: "
                  f"{'passes' if pm['tv'] <= pm['null99'] else 'fails'}", flush=True)
        stats = perfect_model_statistics(run, k, pull, 0)
        results["perfect_model"].append(dict(model=model, kernel="projected",
                                             calibration="statistics", **stats))
        own, true = stats["samples"], stats["perfect_model"]
        print(f"  {model} projected, c-free statistics: on the model's samples sigma "
              f"{own['params']['sigma']:.3g} (inside {own['inside']:.2f}, EF {own['ef']:.2f}); "
              f"on true data sigma {true['params']['sigma']:.3g}, predicted TV "
              f"{true['tv']:.3f} against {stats['null99']:.3f}", flush=True)

    print("\n4. before training: the tuned kernel's sigma (training stds) on other tasks")
    sigma = best["scale"] / float(tune_run.train.std())
    for task in TRANSFER_TASKS:
        for seed in (0, 1, 2):
            run = zoo.load(task, "DiffusionMLP", seed)
            kernel = ProjectedNoise(sigma=sigma, pull=pull, k=k).fit(run.train)
            values = run.task.measure(kernel.perturb(run.train, np.random.default_rng([seed, 2])))
            agr = agreement(run.task.prior, values, run.task.measure(run.samples), ceiling=False)
            results["transfer"].append(dict(task=task, seed=seed, inside=agr.inside_pearson,
                                            ef=agr.explained_fraction,
                                            out_predicted=agr.oos_predicted,
                                            out_observed=agr.oos_observed))
            print(f"  {task:17s} s{seed}: inside {agr.inside_pearson:5.2f}  EF "
                  f"{agr.explained_fraction:5.2f}  out {agr.oos_predicted:.3f} / "
                  f"{agr.oos_observed:.3f}", flush=True)
    seconds = time.perf_counter() - started
    print(f"\n{seconds:.0f} s in all")
    if args.out:
        write_text_atomic(args.out, json.dumps(jsonable(dict(results, k=k, pull=pull,
                                                             seconds=seconds)), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
