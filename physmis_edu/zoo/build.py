"""Build the store of trained runs: ``python -m physmis_edu.zoo build`` (introduced in Chapter 1).

Resumable (a run already in the manifest with the same spec is not retrained), atomic (every file
is written to a temporary name and renamed), with a progress bar, and dispatched through joblib:
``--jobs N`` runs N trainings at once on this machine, and under
``joblib.parallel_config(backend="dask")`` (or Ray's backend) the same code fans out to a cluster.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import hashlib
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from .. import __version__
from . import catalog, checks, store

CODE_PARTS = ("models", "tasks", "zoo", "mitigations")


def code_hash() -> str:
    """sha256 of the library source that decides a run (models, tasks, the store itself)."""
    base = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for part in CODE_PARTS:
        for path in sorted((base / part).glob("*.py")):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _drift_summary(task, values, seed: int, n_boot: int = 200) -> dict:
    from ..metrics import drift_report

    rep = drift_report(values, task.prior, bins=20, n_boot=n_boot, rng=seed)
    return dict(tv=rep.tv, tv_ci=list(rep.tv_ci), null_tv99=rep.null_tv99, w1=rep.w1,
                out_of_support=rep.out_of_support, n_failed=int(rep.n_failed),
                below=float(rep.histogram.probs[0]), above=float(rep.histogram.probs[-1]))


def quantise(samples: np.ndarray):
    """16-bit fixed point per channel: ``codes`` (uint16), ``offset`` and ``scale`` (float64).

    The rounding error is at most half a step, ``(max - min) / 131070`` of each channel's span,
    far finer than float16 near 1. ``None`` where the samples hold a non-finite value.
    """
    if not np.isfinite(samples).all():
        return None
    x = samples.astype(np.float64)
    offset = x.min(axis=(0, 1))
    span = x.max(axis=(0, 1)) - offset
    scale = np.where(span > 0, span / 65535.0, 1.0)
    codes = np.rint((x - offset) / scale).astype(np.uint16)
    return codes, offset, scale


def _quantisation_check(task, samples: np.ndarray, null_tv99: float):
    """Does the recovery tolerate 16-bit storage? Compare the recovered histograms.

    Accepted when the two histograms differ by at most a twentieth of the null's 99th percentile
    (rounding must not move mass by anything a reader could see) and fail on the same samples.
    Returns the verdict (a dict) and the packed samples
    (``None`` where they hold a non-finite value).
    """
    from ..metrics import recovered_histogram, total_variation

    packed = quantise(samples)
    if packed is None:
        return dict(ok=False, reason="non-finite samples"), None
    r32 = task.measure(samples)
    r16 = task.measure(store.dequantise(*packed))
    h32 = recovered_histogram(r32, task.lo, task.hi, 20)
    h16 = recovered_histogram(r16, task.lo, task.hi, 20)
    both = np.isfinite(r32) & np.isfinite(r16)
    tv = total_variation(h32.probs, h16.probs)
    same = bool(np.array_equal(np.isnan(r32), np.isnan(r16)))
    return dict(max_abs_change=float(np.max(np.abs(r32[both] - r16[both]))) if both.any() else 0.0,
                tv_between_histograms=float(tv), same_failures=same,
                ok=bool(tv <= null_tv99 / 20 and same)), packed


def _loss_curve(losses, points: int = 200) -> dict:
    losses = np.asarray(losses, dtype=np.float64)
    width = max(1, losses.size // points)
    n = losses.size // width * width
    means = losses[:n].reshape(-1, width).mean(axis=1)
    return dict(window=width, step=[int((i + 1) * width) for i in range(means.size)],
                mean_loss=[float(v) for v in means])


def reweighted_training_set(spec: catalog.RunSpec, task, train, c_train, root):
    """The training set of a reweighted run (Chapter 9) and what the reweighting predicts.

    The kernel is white noise in the model's coordinates, calibrated without ``c`` on the
    samples of the baseline run named by ``spec.reweight["calibrated_on"]`` (it must be in the
    store at ``root``). Weights come from the kernel's predicted recovery of the training set
    (``spec.reweight["method"]``: ``'ratio'`` for ``p / q_hat``, ``'iterative'`` for
    Richardson-Lucy); the model is fitted on ``n_train`` trajectories resampled by weight.
    """
    from ..kernels import Gaussian
    from ..mitigations import (Identity, ModelCoordinates, calibrate_in_model_coordinates,
                               iterative_weights, kernel_weights, weighted_resample)

    base = catalog.SPECS.get(spec.reweight["calibrated_on"])
    if base is None or base.task != spec.task:
        raise ValueError(f"reweight.calibrated_on must name a baseline run of task {spec.task}; "
                         f"got {spec.reweight['calibrated_on']!r}")
    samples = store.load(base.task, base.model, base.seed, base.variant, root=root).samples
    seed = catalog.DATA_SEEDS[spec.task]
    cal = calibrate_in_model_coordinates(train, samples, Gaussian,
                                         rng=np.random.default_rng([seed, 7]))
    coords = ModelCoordinates(Identity(), train)
    perturbed = coords.from_model(cal.kernel.perturb(coords.to_model(train),
                                                     np.random.default_rng([seed, 8])))
    predicted = task.measure(perturbed)
    method = spec.reweight["method"]
    if method == "ratio":
        result = kernel_weights(c_train, task.prior, predicted, task.lo, task.hi)
    elif method == "iterative":
        result = iterative_weights(c_train, task.prior, predicted, task.lo, task.hi)
    else:
        raise ValueError(f"reweight.method must be 'ratio' or 'iterative'; got {method!r}")
    idx = weighted_resample(train, result.weights, spec.n_train,
                            rng=np.random.default_rng([spec.seed, 5]))
    summary = dict(method=method, sigma=cal.scale, calibrated_on=base.name,
                   predicted_tv_before=result.tv_before, predicted_tv_after=result.tv_after,
                   predicted_tv_inside_before=result.tv_inside_before,
                   predicted_tv_inside_after=result.tv_inside_after,
                   predicted_outside_before=result.predicted_outside_before,
                   predicted_outside_after=result.predicted_outside_after,
                   min_outside=result.min_outside, n_clipped=int(result.n_clipped),
                   effective_sample_size=float(result.effective_sample_size),
                   bin_weights=[None if not np.isfinite(w) else float(w)
                                for w in result.bin_weights],
                   resampled_c=[float(v) for v in np.quantile(c_train[idx], [0.1, 0.5, 0.9])])
    return train[idx], summary


def _joint_samples(spec: catalog.RunSpec, task, model, fresh, null_tv99: float,
                   extra: dict) -> dict:
    """A conditional planner's second sample set (Chapter 9): plan ``i`` is pinned to the ends
    of fresh trajectory ``i`` and asked for that trajectory's own distance, so that requests
    are drawn jointly with the ends, as the data pair them. Returns the arrays to store
    (``joint_*``) and records the 16-bit storage check and the requested-against-recovered
    summary in ``extra``."""
    from ..mitigations import requested_vs_recovered

    asked = task.measure(fresh[:spec.n_samples]).astype(np.float64)
    x = model.sample(spec.n_samples, inpaint=catalog.endpoint_pins(spec, fresh, spec.n_samples),
                     cond=asked, rng=np.random.default_rng([spec.seed, 5]))
    # The same test of 16-bit storage as the run's main samples pass.
    extra["quantisation_joint"], packed = _quantisation_check(task, x, null_tv99)
    if not extra["quantisation_joint"]["ok"]:
        raise ValueError(f"{spec.name}: the joint-request samples do not survive 16-bit "
                         f"storage: {extra['quantisation_joint']}")
    report = requested_vs_recovered(asked, task.measure(store.dequantise(*packed)), task.lo,
                                    task.hi)
    extra["conditioning_joint"] = dict(rmse=report.rmse, bias=report.bias,
                                       pearson=report.pearson, failed=report.failed,
                                       outside=report.outside)
    codes, offset, scale = packed
    return dict(joint_requested=asked, joint_codes=codes, joint_offset=offset,
                joint_scale=scale)


def train_run(spec: catalog.RunSpec, out_dir, device=None, threads: int = 1) -> dict:
    """Train, sample and score one run, write its files atomically; return ``{file: sha256}``."""
    import torch

    from ..models import model_classes

    torch.set_num_threads(threads)
    out_dir = Path(out_dir)
    task = catalog.make_task(spec.task)
    train, c_train = catalog.training_data(spec)
    fresh, _ = catalog.fresh_data(spec)
    reference = checks.statistics(task, fresh, train)  # the same for every checkpoint
    model = model_classes()[spec.model](**spec.config, seed=spec.seed, device=device,
                                        progress=False)
    extra = {}
    fit_x, fit_cond = train, None
    if spec.representation is not None:
        from ..mitigations import Represented, representation_from_dict

        model = Represented(model, representation_from_dict(spec.representation))
    if spec.reweight is not None:
        fit_x, extra["reweighting"] = reweighted_training_set(spec, task, train, c_train,
                                                              out_dir)
    if spec.conditional:
        fit_cond = c_train

    def requested(n, rng):
        # A conditional model is asked for controls drawn from the prior.
        return task.prior.sample(n, rng=rng) if spec.conditional else None

    curve, start = [], time.perf_counter()

    def score_checkpoint(m, step):
        tick = time.perf_counter()
        x = m.sample(spec.n_curve, inpaint=catalog.endpoint_pins(spec, fresh, spec.n_curve),
                     cond=requested(spec.n_curve, np.random.default_rng([spec.seed, 4, step])),
                     rng=np.random.default_rng([spec.seed, 2, step]))
        scored = sum(c["scoring"] for c in curve)
        curve.append(dict(step=step, train_seconds=tick - start - scored,
                          loss=float(np.mean(m.loss_history[-50:])),
                          **_drift_summary(task, task.measure(x), spec.seed, n_boot=50),
                          **{k: v for k, v in
                             checks.sample_checks(task, x, train, fresh, reference).items()
                             if k != "reference"}))
        curve[-1]["scoring"] = time.perf_counter() - tick

    if fit_cond is None:
        model.fit(fit_x, callback=score_checkpoint, callback_steps=spec.milestones)
    else:
        model.fit(fit_x, cond=fit_cond, callback=score_checkpoint,
                  callback_steps=spec.milestones)
    scoring = sum(c["scoring"] for c in curve)
    train_seconds = time.perf_counter() - start - scoring
    tick = time.perf_counter()
    asked = requested(spec.n_samples, np.random.default_rng([spec.seed, 4]))
    samples = model.sample(spec.n_samples,
                           inpaint=catalog.endpoint_pins(spec, fresh, spec.n_samples),
                           cond=asked, rng=np.random.default_rng([spec.seed, 3]))
    sample_seconds = time.perf_counter() - tick
    drift = _drift_summary(task, task.measure(samples), spec.seed)
    packing, packed = _quantisation_check(task, samples, drift["null_tv99"])
    if packing["ok"]:
        codes, offset, scale = packed
        arrays = dict(codes=codes, offset=offset, scale=scale)
        shipped = store.dequantise(codes, offset, scale)
    else:
        arrays, shipped = dict(samples=samples), samples
    if asked is not None:
        from ..mitigations import requested_vs_recovered

        arrays["requested"] = asked.astype(np.float64)
        report = requested_vs_recovered(asked, task.measure(shipped), task.lo, task.hi)
        extra["conditioning"] = dict(rmse=report.rmse, bias=report.bias, pearson=report.pearson,
                                     failed=report.failed, outside=report.outside)
    if spec.conditional and spec.plan_endpoints:
        arrays.update(_joint_samples(spec, task, model, fresh, drift["null_tv99"], extra))
    meta = dict(
        format=store.FORMAT, name=spec.name, spec=spec.to_dict(), spec_hash=spec.spec_hash(),
        task_repr=repr(task), train_sha256=store.sha256_array(train),
        fresh_sha256=store.sha256_array(fresh), n_parameters=int(model.n_parameters),
        train_seconds=train_seconds, sample_seconds=sample_seconds, scoring_seconds=scoring,
        device=str(model.device_), threads=threads, torch=torch.__version__,
        numpy=np.__version__, python=platform.python_version(), library=__version__,
        code_hash=code_hash(),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        loss_curve=_loss_curve(model.loss_history), curve=curve,
        checks=checks.sample_checks(task, shipped, train, fresh, reference),
        drift=_drift_summary(task, task.measure(shipped), spec.seed),
        quantisation=packing, samples_storage="uint16" if packing["ok"] else "float32",
        **extra,
    )
    files = {}
    npz = out_dir / f"{spec.name}.npz"
    store.write_atomic(npz, lambda handle: np.savez_compressed(handle, **arrays))
    files[npz.name] = store.sha256_file(npz)
    if spec.checkpoint:
        pt = out_dir / f"{spec.name}.pt"
        model.save(pt)  # atomic itself
        files[pt.name] = store.sha256_file(pt)
    meta_path = out_dir / f"{spec.name}.json"
    store.write_json(meta_path, meta)
    files[meta_path.name] = store.sha256_file(meta_path)
    return dict(name=spec.name, spec_hash=spec.spec_hash(), files=files,
                seconds=time.perf_counter() - start)


def select(specs, only: str | None) -> list[catalog.RunSpec]:
    """The specs whose names match ``only`` (comma-separated shell patterns; ``None``: all)."""
    if only is None:
        return list(specs)
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    if not patterns:
        raise ValueError(f"--only must hold at least one pattern; got {only!r}")
    chosen = [s for s in specs if any(fnmatch.fnmatchcase(s.name, p) for p in patterns)]
    if not chosen:
        raise ValueError(f"--only {only!r} matches no run; runs: {[s.name for s in specs]}")
    return chosen


def pending(specs, root) -> list[catalog.RunSpec]:
    """The specs not yet in the manifest at ``root`` with the same spec hash and intact files."""
    manifest = store.read_manifest(root)
    todo = []
    for spec in specs:
        entry = manifest["runs"].get(spec.name)
        intact = entry is not None and entry["spec_hash"] == spec.spec_hash() and all(
            (Path(root) / f).exists() and store.sha256_file(Path(root) / f) == d
            for f, d in entry["files"].items())
        if not intact:
            todo.append(spec)
    return todo


def build(specs=None, out_dir=None, jobs: int = 1, device=None, progress: bool = True) -> list:
    """Train every spec not yet in the store at ``out_dir`` (default: the package's data folder).

    Cells go through joblib (``n_jobs=jobs``), so ``joblib.parallel_config(backend="dask")``
    sends them to a dask cluster unchanged. Returns the results of the runs trained now.
    """
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    from .._validation import check_positive_int
    from ..models import model_classes

    jobs = check_positive_int(jobs, "jobs")
    specs = list(catalog.SPECS.values()) if specs is None else list(specs)
    out_dir = Path(store.DATA_DIR if out_dir is None else out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = pending(specs, out_dir)
    # Longest first, so the slowest trainings do not start last.
    classes = model_classes()
    todo.sort(key=lambda s: -s.config["train_steps"] * classes[s.model].relative_cost)
    threads = max(1, (os.cpu_count() or 1) // jobs)
    results = []
    run = Parallel(n_jobs=jobs, return_as="generator_unordered")
    bar = tqdm(total=len(todo), desc="store", disable=not progress, file=sys.stderr)
    for result in run(delayed(train_run)(spec, out_dir, device, threads) for spec in todo):
        manifest = store.read_manifest(out_dir)
        manifest["runs"][result["name"]] = dict(spec_hash=result["spec_hash"],
                                                files=result["files"])
        store.write_json(out_dir / store.MANIFEST, manifest)
        results.append(result)
        bar.set_postfix_str(f"{result['name']} {result['seconds']:.0f} s")
        bar.update()
    bar.close()
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m physmis_edu.zoo",
                                     description="The store of trained runs of the book.")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="train the runs not yet in the store (resumable)")
    b.add_argument("--only", help="comma-separated patterns of run names, e.g. '*.VAE.*'")
    b.add_argument("--jobs", type=int, default=1, help="trainings at once (joblib)")
    b.add_argument("--out", help="store folder (default: the package's data folder)")
    b.add_argument("--device", help="cpu, cuda or cuda:N (default: CUDA when available)")
    ls = sub.add_parser("list", help="list the runs of the catalog and whether each is built")
    ls.add_argument("--out", help="store folder (default: the package's data folder)")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else store.DATA_DIR
    if args.command == "list":
        missing = {s.name for s in pending(catalog.SPECS.values(), out)}
        for name in catalog.SPECS:
            print(f"{'todo ' if name in missing else 'built'}  {name}")
        return 0
    try:
        specs = select(catalog.SPECS.values(), args.only)
        if args.jobs < 1:
            raise ValueError(f"--jobs must be an integer >= 1; got {args.jobs}")
    except ValueError as err:
        parser.error(str(err))
    start = time.perf_counter()
    done = build(specs, out, jobs=args.jobs, device=args.device)
    print(f"trained {len(done)} run(s) in {time.perf_counter() - start:.0f} s; store at {out}")
    return 0
