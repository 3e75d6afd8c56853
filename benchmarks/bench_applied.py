"""Timings of the applied tasks (maze and double pendulum, Chapter 6's applied panel) on the CPU.

Run: ``python benchmarks/bench_applied.py [--maze-n 2000] [--pendulum-n 10000]``.
Prints wall-clock seconds (best of ``--repeat`` runs) and the quality figures that go with them:
curation acceptance rate, resampling error of travel distance, energy drift of RK4.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from physmis_edu.tasks import DoublePendulum, MazeTask


def best_of(repeat, fn):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--maze-n", type=int, default=2000)
    parser.add_argument("--pendulum-n", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    print(f"maze: {args.maze_n} curated episodes, horizon 64")
    for maze in ("umaze", "medium", "large"):
        task = MazeTask(maze=maze)
        seconds, ds = best_of(args.repeat, lambda: task.sample_episodes(args.maze_n, rng=0))
        rel = (ds.true_distance - ds.c) / ds.true_distance
        print(f"  {maze:6s} [{task.lo:g}, {task.hi:g}] cells: {seconds:6.2f} s, "
              f"{ds.n_proposed} proposed, acceptance {ds.acceptance_rate:.2f}, "
              f"timeouts {ds.n_timeouts}, "
              f"resampling error of distance max {rel.max():.2e}")

    for representation in ("sincos", "angles"):
        task = DoublePendulum(representation=representation)
        c = task.prior.sample(args.pendulum_n, rng=0)
        seconds, x = best_of(args.repeat, lambda: task.generate(c, rng=0))
        rel = np.abs(task.measure(x) - c) / c
        print(f"pendulum ({representation}, d={task.channels}): "
              f"{args.pendulum_n} trajectories of {task.length} frames "
              f"({(task.length - 1) * task.stride} RK4 steps of {task.dt} s): {seconds:6.2f} s; "
              f"recovery relative error median {np.median(rel):.1e}, max {rel.max():.1e}")

    task = DoublePendulum()
    start = task.initial_states(np.linspace(task.lo, task.hi, 200), rng=1)
    states = task.integrate(start, (task.length - 1) * task.stride + 1, stride=1)
    e = task.energy(states)
    print(f"pendulum RK4 relative energy error over the horizon (every step, 200 energies): "
          f"max {(np.abs(e - e[:, :1]).max(axis=1) / e[:, 0]).max():.1e}")
    energies = np.array([2.0, 10.0, 20.0, 30.0, 40.0])
    seconds, lam = best_of(1, lambda: task.finite_time_lyapunov(energies, rng=2))
    print(f"pendulum finite-time Lyapunov exponent (1/s, 10 s, 8 starts each) "
          f"at E = {energies.tolist()}: {np.round(lam, 2).tolist()} ({seconds:.2f} s)")


if __name__ == "__main__":
    main()
