"""Maze navigation task (Chapter 6's applied panel): layouts, physics, walls, curation, recovery, kernel drift."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from physmis_edu import metrics
from physmis_edu.kernels import Gaussian, predict_recovered
from physmis_edu.tasks import MazeTask
from physmis_edu.tasks.maze import (ControlNotAnInputError, MazeLayout, PointMass, maze_layout, plot_maze,
                                    simulate_episodes, travel_distance, wall_crossings)

N = 2000


@pytest.fixture(scope="module")
def medium():
    task = MazeTask(maze="medium")
    return task, task.sample_episodes(N, rng=0)


def test_layouts_have_the_maze2d_shapes_and_are_connected():
    expected = {"umaze": ((5, 5), 7), "medium": ((8, 8), 26), "large": ((9, 12), 46)}
    for name, (shape, n_free) in expected.items():
        layout = maze_layout(name)
        assert layout.shape == shape
        assert layout.n_free == n_free
        assert np.isfinite(layout.distances).all()
    # The U-maze is a single corridor: its two ends are 6 steps apart.
    assert maze_layout("umaze").distances.max() == 6


@pytest.mark.parametrize("name", ["umaze", "medium", "large"])
def test_no_trajectory_crosses_a_wall_in_1000_episodes(name):
    layout = maze_layout(name)
    ep = simulate_episodes(layout, 1000, rng=1)
    assert ep.reached.all()
    # Every simulated segment, not just the stored points, is tested against every wall square.
    assert wall_crossings(layout, ep.positions).sum() == 0
    assert wall_crossings(layout, ep.resample(64)).sum() == 0
    # The body's margin is respected at every simulated state.
    assert layout.is_clear(ep.positions.reshape(-1, 2), PointMass().margin).all()


def test_wall_crossings_detects_a_corner_cut_between_free_points():
    layout = maze_layout("umaze")
    # Both endpoints lie in free cells ((row 1, col 3) and (row 3, col 2)), yet the straight segment
    # clips the wall cell (row 2, col 2): a check of the endpoints alone would miss it.
    path = np.array([[[3.2, 1.8], [2.6, 3.4]]])
    assert layout.is_clear(path[0]).all()
    assert wall_crossings(layout, path)[0] >= 1
    # A segment inside the corridor does not count.
    assert wall_crossings(layout, np.array([[[1.5, 1.5], [3.5, 1.5]]]))[0] == 0


def test_travel_distance_recovered_to_resampling_tolerance(medium):
    task, ds = medium
    assert ds.x.dtype == np.float32 and ds.x.shape == (N, 64, 2)
    # c is the polyline length of the stored trajectory, summed here segment by segment...
    import math

    pts = ds.x[:20, :, :2].astype(float)
    by_hand = [sum(math.hypot(*(b - a)) for a, b in zip(traj[:-1], traj[1:])) for traj in pts]
    np.testing.assert_allclose(ds.c[:20], by_hand, rtol=1e-12)
    # ...which does not depend on the direction of travel.
    np.testing.assert_allclose(task.measure(ds.x[:, ::-1]), ds.c, rtol=1e-9)
    # ...and falls short of the simulated path's length only by the chord error of resampling.
    rel = (ds.true_distance - ds.c) / ds.true_distance
    assert (rel > -1e-6).all() and rel.max() < 0.01
    assert task.recover(ds.x).n_failed == 0


def test_curated_distances_follow_the_prior_within_the_null(medium):
    task, ds = medium
    assert (ds.c >= task.lo).all() and (ds.c <= task.hi).all()
    assert 0.0 < ds.acceptance_rate <= 1.0 and ds.n_proposed >= N
    # Bins that do not line up with curation's strata (13 and 50) test the shape inside each stratum too.
    for bins in (13, 50):
        tv = metrics.total_variation(metrics.prior_probs(task.prior, bins),
                                     metrics.recovered_histogram(ds.c, task.lo, task.hi, bins).probs)
        assert tv < metrics.null_quantile(task.prior, N, bins=bins, rng=3)


def test_start_and_goal_are_recorded(medium):
    task, ds = medium
    np.testing.assert_allclose(ds.x[:, 0], ds.start, atol=1e-5)
    # The episode ends within the goal tolerance (0.1 cell) of the goal.
    assert np.linalg.norm(ds.x[:, -1] - ds.goal, axis=1).max() < 0.1 + 1e-5
    assert len({ds.start.shape, ds.goal.shape}) == 1 and ds.start.shape == (N, 2)


def test_gaussian_kernel_predicts_paths_too_long_too_often(medium):
    task, ds = medium
    q_hat = predict_recovered(task, Gaussian(0.02), ds.x, rng=4)
    # White noise lengthens every path (|d + e| > |d| on average): the mass moves up.
    assert np.mean(q_hat > ds.c) > 0.95
    hist = metrics.recovered_histogram(q_hat, task.lo, task.hi)
    assert hist.counts[-1] > hist.counts[0]
    tv = metrics.total_variation(metrics.prior_probs(task.prior, 20), hist.probs)
    assert tv > 2 * metrics.null_quantile(task.prior, N, rng=5)


def test_velocity_channels_and_horizon():
    task = MazeTask(maze="umaze", length=32, velocities=True)
    ds = task.sample_episodes(200, rng=6)
    assert ds.x.shape == (200, 32, 4) and task.channels == 4
    # The stored velocities agree in size with the path: speeds never exceed the body's limit.
    assert np.hypot(ds.x[..., 2], ds.x[..., 3]).max() <= PointMass().speed_max + 1e-5
    np.testing.assert_allclose(task.measure(ds.x), travel_distance(ds.x[..., :2]), rtol=1e-12)


def test_same_seed_same_dataset():
    task = MazeTask(maze="umaze")
    a, b = task.sample_episodes(100, rng=7), task.sample_episodes(100, rng=7)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.goal, b.goal)


def test_recovery_reports_nan_trajectories():
    task = MazeTask(maze="umaze", length=8)
    x = np.zeros((3, 8, 2), dtype=np.float32)
    x[1, 4, 0] = np.nan
    rec = task.recover(x)
    assert rec.failure_counts() == {"nan in trajectory": 1}
    assert np.isnan(rec.values[1]) and rec.values[0] == 0.0


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="unknown maze"):
        MazeTask(maze="spiral")
    with pytest.raises(ValueError, match="unknown maze"):
        maze_layout("U_MAZE")
    with pytest.raises(ValueError, match="length"):
        MazeTask(maze="umaze", length=1)
    with pytest.raises(ValueError, match="lo < hi"):
        MazeTask(maze="umaze", lo=5.0, hi=2.0)
    with pytest.raises(ValueError, match="non-negative"):
        MazeTask(maze="umaze", lo=-1.0, hi=2.0)
    with pytest.raises(ValueError, match="margin"):
        PointMass(speed_max=10.0, dt=0.02)
    with pytest.raises(ValueError, match="jitter"):
        simulate_episodes(maze_layout("umaze"), 5, jitter=0.45)
    with pytest.raises(ValueError, match="enclosed"):
        MazeLayout.from_text(["...", "#.#", "###"])
    task = MazeTask(maze="umaze")
    with pytest.raises(ControlNotAnInputError, match="not an input"):
        task.generate([2.0])
    with pytest.raises(ValueError):  # the same error is a ValueError for generic callers
        task.generate([2.0])
    with pytest.raises(ValueError, match="d=2"):
        task.measure(np.zeros((2, 64, 3)))


def test_plot_maze_draws_trajectories_coloured_by_distance(medium):
    task, ds = medium
    ax = plot_maze("medium", x=ds.x, n_show=6, start=ds.start, goal=ds.goal)
    assert len(ax.collections[0].get_paths()) == 6
    matplotlib.pyplot.close("all")


def test_propose_plugs_into_curate_directly():
    from physmis_edu.curation import curate

    task = MazeTask(maze="large")
    assert (task.lo, task.hi) == (2.0, 14.0)  # the maze's default range
    stats = {}
    cur = curate(lambda m, r: task.propose(m, r, stats), task.measure, task.prior, 200, rng=13, batch=256)
    assert set(cur.extras) == {"start", "goal", "true_distance"} and cur.extras["start"].shape == (200, 2)
    np.testing.assert_allclose(cur.x[:, 0], cur.extras["start"], atol=1e-5)
    assert stats["n_timeouts"] == 0


def test_pin_endpoints_pins_start_and_goal_of_each_path_and_checks_its_input():
    from physmis_edu.tasks.maze import pin_endpoints

    x = np.random.default_rng(0).uniform(1, 4, (5, 8, 2))
    mask, values = pin_endpoints(x, 3)
    assert mask.shape == values.shape == (3, 8, 2)
    assert mask.sum() == 3 * 2 * 2 and mask[:, [0, -1]].all()
    np.testing.assert_array_equal(values[mask], x[:3][mask])
    with pytest.raises(ValueError, match="n must be <="):
        pin_endpoints(x, 6)
    with pytest.raises(ValueError, match="channel"):
        pin_endpoints(x[..., :1])
