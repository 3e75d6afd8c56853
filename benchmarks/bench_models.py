"""Benchmark the generative models on the logistic map (Chapter 5): speed, memory and drift.

For each model class and run profile: parameters, training steps per second, samples per
second, peak memory, and the drift of the recovered distribution (TV and W1 against the
prior, with the finite-sample null's 99th percentile).

    python benchmarks/bench_models.py                    # ci profile, all four classes
    python benchmarks/bench_models.py --profile cpu gpu  # larger settings
    python benchmarks/bench_models.py --models VAE DiffusionMLP --n-sample 2000

Each (class, profile) runs in a fresh subprocess so that the peak memory belongs to it:
on the CPU the process's peak resident set (``ru_maxrss``) and its growth over the
baseline after imports and data; on CUDA ``torch.cuda.max_memory_allocated``.
Timings depend on what else runs on the machine; ``--threads`` sets torch's threads
(default 1, as in the ``ci`` profile).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

MODEL_NAMES = ("DiffusionUNet", "DiffusionMLP", "Transformer", "VAE")


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_one(name: str, profile: str, n_train: int, n_sample: int, device: str | None, threads: int,
            seed: int) -> dict:
    """Train one model on the logistic map and measure it; returns a JSON-able dict."""
    import numpy as np
    import torch

    from physmis_edu import metrics
    from physmis_edu.models import MODELS
    from physmis_edu.tasks import LogisticMap

    torch.set_num_threads(threads)
    task = LogisticMap()
    x, _ = task.sample(n_train, np.random.default_rng(seed))
    model = MODELS[name].for_profile(profile, device=device, seed=seed, progress=False)
    on_cuda = model.device_.type == "cuda"
    base_rss = _rss_mib()
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(model.device_)

    def sync():
        if on_cuda:
            torch.cuda.synchronize(model.device_)

    start = time.perf_counter()
    model.fit(x)
    sync()
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    samples = model.sample(n_sample, rng=seed)
    sync()
    sample_s = time.perf_counter() - start
    report = metrics.drift_report(task.measure(samples), task.prior, rng=seed)
    return {
        "model": name, "profile": profile, "device": str(model.device_), "threads": threads,
        "params": model.n_parameters, "train_steps": model.train_steps, "fit_s": fit_s,
        "steps_per_s": model.train_steps / fit_s, "samples_per_s": n_sample / sample_s,
        "peak_mib": ((torch.cuda.max_memory_allocated(model.device_) / 2**20) if on_cuda
                     else _rss_mib()),
        "growth_mib": None if on_cuda else _rss_mib() - base_rss,
        "memory": "cuda allocated" if on_cuda else "cpu rss",
        "tv": report.tv, "null_tv99": report.null_tv99, "w1": report.w1,
        "out_of_support": report.out_of_support, "n_failed": report.n_failed, "n": report.n,
        "final_loss": float(np.mean(model.loss_history[-50:])),
    }


def format_table(rows: list[dict]) -> str:
    head = ("| model | profile | device | params | fit s | steps/s | samples/s "
            "| peak MiB (growth) | TV | null99 | TV/null99 | W1 | out of support | failed |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['profile']} | error: {r['error']} |")
            continue
        growth = "" if r["growth_mib"] is None else f" ({r['growth_mib']:.0f})"
        lines.append(
            f"| {r['model']} | {r['profile']} | {r['device']} | {r['params']:,} "
            f"| {r['fit_s']:.1f} | {r['steps_per_s']:.1f} | {r['samples_per_s']:.0f} "
            f"| {r['peak_mib']:.0f}{growth} | {r['tv']:.3f} | {r['null_tv99']:.3f} "
            f"| {r['tv'] / r['null_tv99']:.0f}x | {r['w1']:.3f} "
            f"| {100 * r['out_of_support']:.1f}% | {r['n_failed']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", nargs="+", default=["ci"], choices=["ci", "cpu", "gpu"])
    parser.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--n-sample", type=int, default=10_000)
    parser.add_argument("--device", default=None,
                        help="cpu, cuda or cuda:N (default: resolve_device)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-isolate", action="store_true",
                        help="run in this process (peak memory then accumulates)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.one:
        print(json.dumps(run_one(args.models[0], args.profile[0], args.n_train, args.n_sample,
                                 args.device, args.threads, args.seed)))
        return 0

    rows = []
    for profile in args.profile:
        for name in args.models:
            if args.no_isolate:
                row = run_one(name, profile, args.n_train, args.n_sample, args.device,
                              args.threads, args.seed)
            else:
                cmd = [sys.executable, __file__, "--one", "--models", name, "--profile", profile,
                       "--n-train", str(args.n_train), "--n-sample", str(args.n_sample),
                       "--threads", str(args.threads), "--seed", str(args.seed)]
                if args.device:
                    cmd += ["--device", args.device]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    row = {"model": name, "profile": profile,
                           "error": done.stderr.strip().splitlines()[-1:]}
                else:
                    row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"done: {name} [{profile}]", file=sys.stderr, flush=True)
    print(f"logistic map, L=32, n_train={args.n_train}, n_sample={args.n_sample}, "
          f"torch threads={args.threads}")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
