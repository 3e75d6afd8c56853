"""Time ``predict_recovered`` on the logistic map (Chapter 6's kernel prediction).

Prints the median wall time of perturbing 20,000 trajectories of length 64 with a kernel and
recovering ``r`` from them, for the Gaussian and Smooth kernels, plus the nearest-neighbour search
that calibration uses. Run: ``python benchmarks/bench_predict.py``.
"""

from __future__ import annotations

import time

import numpy as np

from physmis_edu.kernels import Gaussian, Smooth, nn_distances, predict_recovered
from physmis_edu.tasks import LogisticMap


def median_time(fn, repeats: int = 7) -> float:
    fn()  # warm-up: caches (the Smooth factor), page faults
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(n: int = 20_000, length: int = 64) -> None:
    task = LogisticMap(length=length)
    x, _ = task.sample(n, rng=0)
    print(f"predict_recovered on {n} logistic trajectories of length {length} (median of 7):")
    for kernel in (Gaussian(0.01), Smooth(0.01, ell=4.0)):
        rng = np.random.default_rng(1)
        seconds = median_time(lambda: predict_recovered(task, kernel, x, rng))
        print(f"  {kernel!r:32s} {1000 * seconds:7.1f} ms")
    ref, _ = task.sample(10_000, rng=2)
    query, _ = task.sample(10_000, rng=3)
    seconds = median_time(lambda: nn_distances(query, ref), repeats=3)
    print(f"nn_distances 10,000 x 10,000 at L*d={length}: {seconds:.2f} s")


if __name__ == "__main__":
    main()
