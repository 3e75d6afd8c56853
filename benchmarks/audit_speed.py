"""Time ``physmis_edu.audit.audit`` on 10,000 samples of length 32 (the practitioner's audit).

Target: the whole audit (measure, distances with bootstrap and null, split half, c-free checks,
kernel calibration with its perfect-model control, sensitivity, figure and JSON written) within
30 s on 2 cores. The inputs are the store's ``sine`` task (L = 32, d = 1): 10,000 training
trajectories and 10,000 stand-in "samples": true trajectories whose controls follow a tilted
prior (``c = lo + (hi - lo) u^1.3``, ``u`` uniform) plus mild time-correlated noise, so that
each looks right and their distribution drifts, as a quietly failing model's would. Prints the
wall time of each step and the total; also times the same audit on the pendulum task
(L = 32, d = 6) unless ``--quick``. Run: ``python benchmarks/audit_speed.py``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from physmis_edu.audit import audit
from physmis_edu.kernels import Smooth
from physmis_edu.zoo.catalog import TASKS


def inputs(task_key: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    task = TASKS[task_key]()
    train, _ = task.sample(n, rng=0)
    rng = np.random.default_rng(1)
    tilted = task.lo + (task.hi - task.lo) * rng.random(n) ** 1.3
    fresh = task.generate(tilted, rng)
    scale = 0.03 * float(np.std(train))
    return train, Smooth(scale, ell=3.0).perturb(fresh, rng)


def time_audit(task_key: str, n: int) -> None:
    train, samples = inputs(task_key, n)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        result = audit(train, samples, task=task_key, out=folder, progress=False)
        seconds = time.perf_counter() - start
    steps = "  ".join(f"{k} {v:.1f}" for k, v in result["timings_s"].items() if k != "total")
    print(f"audit of {n} samples of shape {samples.shape[1:]} ({task_key}): {seconds:.1f} s")
    print(f"  steps (s): {steps}")
    print(f"  TV {result['distances']['tv']['value']:.4f} vs null99 "
          f"{result['null']['tv_q99']:.4f}; kernel sigma {result['kernel']['sigma']:.4g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="samples and training size")
    parser.add_argument("--quick", action="store_true", help="the sine task only")
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} cores, load average {load:.1f} at start")
    time_audit("sine", args.n)
    if not args.quick:
        time_audit("pendulum", args.n)


if __name__ == "__main__":
    main()
