"""Maze navigation: a point mass in grid mazes, control = travel distance.

Introduced in Chapter 7 (the maze planner); also an applied task of Chapter 6's kernel panel.

A demonstration is produced the way offline-RL maze datasets are: pick a random free start
cell and goal cell, take a shortest path between them on the grid (breadth-first search),
turn its cells into jittered waypoints and let a PD controller steer a damped, speed-limited
point mass along them, with walls stopping it.
The control is the travel distance, the arc length of the stored xy path.
It is not an input of the generator, so a dataset whose distance follows the prior is made
by stratified rejection (:func:`physmis_edu.curation.curate`).

Coordinates: cell ``(row, col)`` of a layout covers ``x in [col, col + 1]`` and
``y in [row, row + 1]``; one cell is one unit of length.
Plots flip ``y`` so that the maze looks like its text layout.
This is transposed relative to D4RL, whose ``maze_model`` puts the row index on ``x`` and the
column index on ``y`` (cell ``(i, j)`` centred at ``(i, j)`` times the maze scaling): a point
``(x, y)`` here is ``(y - 0.5, x - 0.5)`` in D4RL's cell units. The layouts match D4RL cell by
cell; only the axes are swapped, which changes no distance and no travel distance.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._validation import (as_rng, check_positive, check_positive_int, check_trajectories,
                           check_values)
from .base import Prior, Recovery, Task

# The three layouts of the maze2d benchmark of D4RL (Fu et al. 2020, "D4RL: Datasets for Deep
# Data-Driven Reinforcement Learning"), as defined by U_MAZE, MEDIUM_MAZE and LARGE_MAZE in
# d4rl/pointmaze/maze_model.py of github.com/Farama-Foundation/D4RL.
# '#' is a wall, '.' a free cell; D4RL's fixed goal marker 'G' is a free cell here because our
# goals are drawn at random.
MAZE_LAYOUTS = {
    "umaze": (
        "#####",
        "#...#",
        "###.#",
        "#...#",
        "#####",
    ),
    "medium": (
        "########",
        "#..##..#",
        "#..#...#",
        "##...###",
        "#..#...#",
        "#.#..#.#",
        "#...#..#",
        "########",
    ),
    "large": (
        "############",
        "#....#.....#",
        "#.##.#.#.#.#",
        "#......#...#",
        "#.####.###.#",
        "#..#.#.....#",
        "##.#.#.#.###",
        "#..#...#...#",
        "############",
    ),
}

# Default travel-distance ranges (cell units), chosen inside the bulk of what the default
# demonstrator produces in each maze (measured on 20,000 episodes each) so that curation to a
# uniform prior keeps an acceptance rate near 0.4: the rarest bin sets the rate.
DEFAULT_DISTANCE_RANGE = {"umaze": (1.0, 5.0), "medium": (1.0, 8.0), "large": (2.0, 14.0)}

_STEPS = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])  # up, down, left, right in (row, col)


class ControlNotAnInputError(ValueError, NotImplementedError):
    """Raised by :meth:`MazeTask.generate`: travel distance is an outcome,
    not an input (Chapter 6).

    It is both a ``ValueError`` (the project's convention for unusable input) and a
    ``NotImplementedError`` (what generic code probing for ``generate`` expects).
    """


@dataclass(frozen=True)
class MazeLayout:
    """A grid maze: a boolean wall array with breadth-first-search distances (Chapter 6).

    Build one with :func:`maze_layout` (a named benchmark layout) or :meth:`from_text`.
    """

    name: str
    walls: np.ndarray = field(repr=False)

    @classmethod
    def from_text(cls, rows, name: str = "custom") -> "MazeLayout":
        """Parse rows of ``'#'`` (wall) and ``'.'``, ``'O'``, ``'G'`` or ``' '`` (free).

        The border must be walls so that the point mass cannot leave the maze.
        """
        if isinstance(rows, str):
            rows = [r for r in rows.strip().splitlines() if r.strip()]
        rows = [str(r) for r in rows]
        if len(rows) < 3 or len({len(r) for r in rows}) != 1 or len(rows[0]) < 3:
            raise ValueError("maze layout must be at least 3 rows of equal length >= 3")
        bad = set("".join(rows)) - set("#.OG ")
        if bad:
            raise ValueError(f"maze layout has unknown tiles {sorted(bad)}; "
                             "use '#' for walls and '.' for free cells")
        walls = np.array([[ch == "#" for ch in r] for r in rows], dtype=bool)
        if not (walls[0].all() and walls[-1].all() and walls[:, 0].all() and walls[:, -1].all()):
            raise ValueError("maze layout must be enclosed by walls ('#' on every border cell)")
        layout = cls(name, walls)
        if layout.n_free < 2:
            raise ValueError("maze layout needs at least two free cells")
        if np.isinf(layout.distances).any():
            raise ValueError("maze layout's free cells must all be connected")
        return layout

    def __post_init__(self):
        self.walls.setflags(write=False)
        free = np.argwhere(~self.walls)
        index = np.full(self.walls.shape, -1)
        index[free[:, 0], free[:, 1]] = np.arange(len(free))
        # Neighbour table over free cells (-1 where a wall), then all-pairs BFS distances:
        # the mazes have at most a few dozen free cells, so a dense table is the simplest.
        nbr = np.full((len(free), 4), -1)
        for k, (dr, dc) in enumerate(_STEPS):
            rr, cc = free[:, 0] + dr, free[:, 1] + dc
            nbr[:, k] = index[rr, cc]
        dist = np.full((len(free), len(free)), np.inf)
        for s in range(len(free)):
            dist[s, s], frontier, d = 0, [s], 0
            while frontier:
                d += 1
                nxt = [v for u in frontier for v in nbr[u] if v >= 0 and np.isinf(dist[s, v])]
                nxt = list(dict.fromkeys(nxt))
                dist[s, nxt] = d
                frontier = nxt
        padded = np.pad(self.walls, 1, constant_values=True)
        for name, value in (("_padded_walls", padded), ("free_cells", free), ("cell_index", index),
                            ("neighbours", nbr), ("distances", dist)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    @property
    def shape(self) -> tuple[int, int]:
        return self.walls.shape

    @property
    def n_free(self) -> int:
        return len(self.free_cells)

    def text(self) -> str:
        """The layout as text, one row per line."""
        return "\n".join("".join("#" if w else "." for w in row) for row in self.walls)

    def cell_centres(self, cells) -> np.ndarray:
        """``(x, y)`` centres of free cells given by their index into ``free_cells``."""
        rc = self.free_cells[np.asarray(cells)]
        return np.stack([rc[..., 1] + 0.5, rc[..., 0] + 0.5], axis=-1).astype(np.float64)

    def is_clear(self, points, margin: float = 0.0) -> np.ndarray:
        """True where the square of half-width ``margin`` around each ``(x, y)`` touches no wall.

        Points outside the grid count as blocked.
        """
        p = np.asarray(points, dtype=np.float64)
        padded = self._padded_walls
        rows, cols = padded.shape
        # Indices into the walls padded by one blocked cell on each side, so that anything
        # outside the grid lands on the padding (blocked) after one clip.
        c = np.clip(np.floor(p[..., 0:1] + np.array([-margin, margin])) + 1,
                    0, cols - 1).astype(np.int64)
        r = np.clip(np.floor(p[..., 1:2] + np.array([-margin, margin])) + 1,
                    0, rows - 1).astype(np.int64)
        flat = padded.ravel()
        r *= cols
        blocked = (flat[r[..., 0] + c[..., 0]] | flat[r[..., 0] + c[..., 1]]
                   | flat[r[..., 1] + c[..., 0]] | flat[r[..., 1] + c[..., 1]])
        return ~blocked

    def random_shortest_paths(self, start, goal, rng=None) -> tuple[np.ndarray, np.ndarray]:
        """Shortest grid paths from each start cell to each goal cell, ties broken at random.

        Returns ``(cells, n_steps)``: ``cells`` of shape ``(n, max_steps + 1)`` (free-cell indices,
        padded with the goal) and ``n_steps`` the BFS distance of each pair.
        All episodes walk in lock step, so the cost is one small vector operation per cell.
        """
        rng = as_rng(rng)
        start, goal = np.asarray(start, dtype=np.int64), np.asarray(goal, dtype=np.int64)
        n_steps = self.distances[start, goal].astype(np.int64)
        cells = np.empty((start.size, int(n_steps.max()) + 1), dtype=np.int64)
        cells[:, 0] = current = start.copy()
        for t in range(1, cells.shape[1]):
            nbr = self.neighbours[current]                                   # (n, 4)
            to_goal = np.where(nbr >= 0, self.distances[np.maximum(nbr, 0), goal[:, None]], np.inf)
            closer = to_goal == (self.distances[current, goal] - 1)[:, None]
            # Pick uniformly among the neighbours one step closer (random tie-breaking gives
            # the variety of routes a human demonstrator would show).
            score = np.where(closer, rng.random(closer.shape), -1.0)
            pick = nbr[np.arange(start.size), score.argmax(axis=1)]
            current = np.where(current == goal, current, pick)
            cells[:, t] = current
        return cells, n_steps


def maze_layout(name: str) -> MazeLayout:
    """One of the maze2d benchmark layouts:
    ``'umaze'``, ``'medium'`` or ``'large'`` (Chapter 6).
    """
    if not isinstance(name, str) or name not in MAZE_LAYOUTS:
        raise ValueError(f"unknown maze {name!r}; expected one of {sorted(MAZE_LAYOUTS)}")
    return MazeLayout.from_text(MAZE_LAYOUTS[name], name=name)


@dataclass
class PointMass:
    """A damped, speed-limited 2-D point mass steered by a PD controller (Chapter 6).

    Per step (semi-implicit Euler): ``a = clip(kp (w - p) - kd v, accel_max) - damping v``,
    ``v <- clip(v + a dt, speed_max)``, ``p <- p + v dt``, then walls: each axis is moved
    separately and a move that would bring the body (a square of half-width ``margin``) into
    a wall is undone and that velocity component zeroed.
    Since one step moves less than ``margin`` (checked), the straight segment between two
    consecutive states never enters a wall cell.
    """

    dt: float = 0.02
    kp: float = 20.0
    kd: float = 6.0
    damping: float = 1.0
    accel_max: float = 10.0
    speed_max: float = 2.5
    margin: float = 0.1

    def __post_init__(self):
        for name in ("dt", "kp", "kd", "accel_max", "speed_max", "margin"):
            setattr(self, name, check_positive(getattr(self, name), name))
        if self.damping < 0 or not np.isfinite(self.damping):
            raise ValueError(f"damping must be a finite number >= 0; got {self.damping!r}")
        if self.margin >= 0.5:
            raise ValueError(f"margin must be < 0.5 cell so the body fits in a corridor; "
                             f"got {self.margin}")
        if not self.speed_max * self.dt < self.margin:
            raise ValueError(f"speed_max * dt = {self.speed_max * self.dt:g} "
                             f"must be < margin = {self.margin:g}, "
                             "otherwise a single step could jump across a wall corner")

    def step(self, layout: MazeLayout, p, v, target, active):
        """Advance the episodes where ``active`` by one step; returns the new ``(p, v)``."""
        u = self.kp * (target - p) - self.kd * v
        norm = np.hypot(u[:, 0], u[:, 1])[:, None]
        u *= np.minimum(1.0, self.accel_max / np.maximum(norm, 1e-12))
        v_new = v + (u - self.damping * v) * self.dt
        speed = np.hypot(v_new[:, 0], v_new[:, 1])[:, None]
        v_new *= np.minimum(1.0, self.speed_max / np.maximum(speed, 1e-12))
        v_new[~active] = 0.0
        p_new = p.copy()
        for axis in (0, 1):
            trial = p_new.copy()
            trial[:, axis] += v_new[:, axis] * self.dt
            ok = layout.is_clear(trial, self.margin)
            p_new[ok, axis] = trial[ok, axis]
            v_new[~ok, axis] = 0.0
        return p_new, v_new


@dataclass
class Episodes:
    """Simulated demonstrations at the simulator's resolution (Chapter 6).

    ``positions`` and ``velocities`` have shape ``(n, T + 1, 2)``; episode ``i`` lives in
    ``[:, : steps[i] + 1]`` and is frozen at its last state afterwards.
    ``reached`` is False where the goal was not reached within the step budget.
    """

    positions: np.ndarray
    velocities: np.ndarray
    steps: np.ndarray
    start: np.ndarray
    goal: np.ndarray
    start_cell: np.ndarray
    goal_cell: np.ndarray
    grid_distance: np.ndarray
    reached: np.ndarray
    dt: float

    def travel_distance(self) -> np.ndarray:
        """Arc length of each simulated path (the frozen tail adds nothing)."""
        return np.linalg.norm(np.diff(self.positions, axis=1), axis=2).sum(axis=1)

    def resample(self, length: int, velocities: bool = False) -> np.ndarray:
        """Each episode linearly interpolated at ``length`` equally spaced times from start to end.

        Returns float64 ``(n, length, 2)`` or ``(n, length, 4)`` with velocities.
        Points lie on the simulated segments, so a resampled path never enters a wall either.
        """
        length = check_positive_int(length, "length", minimum=2)
        s = np.linspace(0.0, 1.0, length)[None, :] * self.steps[:, None]
        i0 = np.minimum(np.floor(s).astype(np.int64), self.positions.shape[1] - 2)
        w = (s - i0)[..., None]
        rows = np.arange(len(self.steps))[:, None]
        channels = [self.positions] + ([self.velocities] if velocities else [])
        out = [(1 - w) * a[rows, i0] + w * a[rows, i0 + 1] for a in channels]
        return np.concatenate(out, axis=2)


def simulate_episodes(layout: MazeLayout, n: int, rng=None, *, body: PointMass | None = None,
                      jitter: float = 0.25, switch_radius: float = 0.35,
                      goal_tolerance: float = 0.1, min_grid_distance: int = 1,
                      max_steps: int | None = None) -> Episodes:
    """Simulate ``n`` demonstrations in ``layout``, all at once (Chapter 6).

    Start and goal are distinct random free cells at least ``min_grid_distance`` apart on the
    grid; the waypoints are the centres of the cells of a random shortest path, each moved by
    uniform jitter in ``[-jitter, jitter]^2``; the start point and the goal point are jittered
    the same way.
    The controller aims at the current waypoint and moves to the next one within
    ``switch_radius``; an episode ends when it is within ``goal_tolerance`` of the goal point.
    """
    n = check_positive_int(n, "n")
    rng = as_rng(rng)
    body = PointMass() if body is None else body
    jitter = float(jitter)
    if not 0.0 <= jitter < 0.5 - body.margin:
        raise ValueError(f"jitter must lie in [0, 0.5 - margin) = [0, {0.5 - body.margin:g}); "
                         f"got {jitter}")
    switch_radius = check_positive(switch_radius, "switch_radius")
    goal_tolerance = check_positive(goal_tolerance, "goal_tolerance")
    min_grid_distance = check_positive_int(min_grid_distance, "min_grid_distance")
    dist = layout.distances
    if min_grid_distance > dist.max():
        raise ValueError(f"min_grid_distance={min_grid_distance} exceeds the maze's diameter "
                         f"{int(dist.max())}")

    pairs = np.argwhere(dist >= min_grid_distance)
    chosen = pairs[rng.integers(len(pairs), size=n)]
    start_cell, goal_cell = chosen[:, 0], chosen[:, 1]
    cells, grid_distance = layout.random_shortest_paths(start_cell, goal_cell, rng)
    waypoints = layout.cell_centres(cells) + rng.uniform(-jitter, jitter, size=cells.shape + (2,))
    start, goal = waypoints[:, 0].copy(), waypoints[np.arange(n), grid_distance].copy()
    waypoints[:, 1:] = np.where(
        (np.arange(1, cells.shape[1])[None, :] >= grid_distance[:, None])[..., None],
        goal[:, None, :], waypoints[:, 1:])
    if max_steps is None:
        # Generous: a cell takes about 1 / speed_max seconds at full speed, plus slowing at turns.
        max_steps = int(np.ceil((4.0 * grid_distance.max() + 10.0) / (body.speed_max * body.dt)))
    max_steps = check_positive_int(max_steps, "max_steps")

    pos = np.empty((n, max_steps + 1, 2))
    vel = np.zeros((n, max_steps + 1, 2))
    pos[:, 0] = p = start
    v = np.zeros((n, 2))
    k = np.minimum(1, grid_distance)                  # index of the current waypoint
    steps = np.full(n, max_steps)
    active = np.ones(n, dtype=bool)
    rows = np.arange(n)
    for t in range(1, max_steps + 1):
        target = waypoints[rows, k]
        p, v = body.step(layout, p, v, target, active)
        pos[:, t], vel[:, t] = p, v
        to_target, to_goal = p - target, p - goal
        near = np.hypot(to_target[:, 0], to_target[:, 1]) < switch_radius
        k = np.where(near & (k < grid_distance), k + 1, k)
        done = active & (np.hypot(to_goal[:, 0], to_goal[:, 1]) < goal_tolerance)
        steps[done] = t
        active &= ~done
        if not active.any():
            pos, vel = pos[:, : t + 1], vel[:, : t + 1]
            break
    # Freeze each finished episode at its last state so that arrays stay rectangular.
    tail = np.arange(pos.shape[1])[None, :] > steps[:, None]
    pos[tail] = pos[rows, steps][np.nonzero(tail)[0]]
    vel[tail] = 0.0
    return Episodes(pos, vel, steps, start, goal, start_cell, goal_cell, grid_distance,
                    reached=~active, dt=body.dt)


def travel_distance(x) -> np.ndarray:
    """Arc length of the xy path (channels 0 and 1) of each trajectory in ``x`` (Chapter 6).

    ``NaN`` where a trajectory contains ``NaN``.
    """
    x = check_trajectories(x, "x", allow_nan=True)
    if x.shape[2] < 2:
        raise ValueError(f"x needs at least 2 channels (x, y); got d={x.shape[2]}")
    if x.shape[1] < 2:
        raise ValueError(f"x needs at least 2 time steps to have a length; got L={x.shape[1]}")
    return np.linalg.norm(np.diff(x[:, :, :2], axis=1), axis=2).sum(axis=1)


@dataclass
class MazeDataset:
    """A curated maze dataset: trajectories, their travel distance, and the endpoints (Chapter 6).

    ``x`` float32 ``(n, L, d)``; ``c`` the recovered travel distance of each stored trajectory
    (float64); ``start`` and ``goal`` the jittered start and goal points ``(n, 2)`` (a planner is
    conditioned on them by inpainting); ``true_distance`` the arc length of the full-resolution
    simulated path (``c`` falls short of it by the resampling error); ``acceptance_rate`` and
    ``n_proposed`` describe the stratified rejection; ``n_timeouts`` counts proposals that did
    not reach their goal and were therefore never offered to curation.
    """

    x: np.ndarray
    c: np.ndarray
    start: np.ndarray
    goal: np.ndarray
    true_distance: np.ndarray
    acceptance_rate: float
    n_proposed: int
    n_timeouts: int = 0


@dataclass
class MazeTask(Task):
    """Point-mass navigation in a maze2d layout; control = travel distance (Chapter 6).

    ``x`` has channels ``(x, y)`` or, with ``velocities=True``, ``(x, y, vx, vy)``, resampled to
    ``length`` equally spaced times between start and arrival.
    ``measure`` is the arc length of the stored xy path.
    Travel distance is an outcome of the demonstrator, not an input, so :meth:`sample` curates
    proposals by stratified rejection so that the measured distance follows the prior, and
    :meth:`generate` refuses (raises :class:`ControlNotAnInputError`): matching a requested
    distance only to within a bin would break the contract ``M(generate(c)) = c``.
    ``lo``/``hi`` default to :data:`DEFAULT_DISTANCE_RANGE` of the maze.
    """

    lo: float | None = None
    hi: float | None = None
    prior: Prior | None = field(default=None, repr=False)
    maze: str = "medium"
    length: int = 64
    velocities: bool = False
    jitter: float = 0.25
    body: PointMass = field(default_factory=PointMass, repr=False)
    bins: int = 20

    name = "maze navigation"
    control_name = "travel distance"
    units = "cells"
    description = ("A damped point mass follows jittered waypoints along a shortest path "
                   "between random start and goal cells; nuisance: start, goal, route and jitter.")

    def __post_init__(self):
        self.layout = maze_layout(self.maze)
        default_lo, default_hi = DEFAULT_DISTANCE_RANGE[self.maze]
        self.lo = default_lo if self.lo is None else self.lo
        self.hi = default_hi if self.hi is None else self.hi
        super().__post_init__()
        if self.lo < 0:
            raise ValueError(f"travel distance range must be non-negative; got lo={self.lo}")
        self.length = check_positive_int(self.length, "length (horizon)", minimum=2)
        self.bins = check_positive_int(self.bins, "bins")
        if not isinstance(self.velocities, bool):
            raise ValueError(f"velocities must be True or False; got {self.velocities!r}")
        self.channels = 4 if self.velocities else 2
        if not isinstance(self.body, PointMass):
            raise ValueError(f"body must be a PointMass; got {type(self.body).__name__}")

    # -- generation -------------------------------------------------------
    def propose(self, n: int, rng=None, stats: dict | None = None):
        """``n`` uncurated demonstrations that reached their goal, as ``(x, extras)`` (Chapter 6).

        ``x`` is float32 ``(n, L, d)``; ``extras`` holds ``start``, ``goal`` and ``true_distance``
        with ``n`` rows each, so it can be passed to :func:`physmis_edu.curation.curate` as is.
        Episodes that did not reach their goal are simulated again; their number is added to
        ``stats['n_timeouts']`` when a dict is given (counted, never hidden).
        """
        n = check_positive_int(n, "n")
        rng = as_rng(rng)
        xs, extras, n_timeouts, have = [], {"start": [], "goal": [], "true_distance": []}, 0, 0
        while have < n:
            ep = simulate_episodes(self.layout, n - have, rng, body=self.body, jitter=self.jitter)
            ok = ep.reached
            n_timeouts += int((~ok).sum())
            if not ok.any():
                continue
            xs.append(ep.resample(self.length, self.velocities)[ok])
            extras["start"].append(ep.start[ok])
            extras["goal"].append(ep.goal[ok])
            extras["true_distance"].append(ep.travel_distance()[ok])
            have += int(ok.sum())
        if stats is not None:
            stats["n_timeouts"] = stats.get("n_timeouts", 0) + n_timeouts
        return (np.concatenate(xs).astype(np.float32),
                {k: np.concatenate(v) for k, v in extras.items()})

    def sample_episodes(self, n: int, rng=None, batch: int = 1024) -> MazeDataset:
        """``n`` demonstrations curated so that travel distance follows the prior (Chapter 6).

        ``batch`` episodes are simulated together per proposal round (about ``batch * 500 * 32``
        bytes of states in the large maze; 1024 to 4096 take about the same time per episode).
        """
        from ..curation import curate  # late import: curation is optional until used

        n = check_positive_int(n, "n")
        rng = as_rng(rng)
        stats = {"n_timeouts": 0}
        cur = curate(lambda m, r: self.propose(m, r, stats), self.measure, self.prior, n,
                     bins=self.bins, rng=rng, batch=batch)
        ex = cur.extras
        return MazeDataset(np.asarray(cur.x, dtype=np.float32),
                           np.asarray(cur.c, dtype=np.float64),
                           np.asarray(ex["start"]), np.asarray(ex["goal"]),
                           np.asarray(ex["true_distance"]),
                           float(cur.acceptance_rate), int(cur.n_proposed), stats["n_timeouts"])

    def sample(self, n: int, rng=None) -> tuple[np.ndarray, np.ndarray]:
        """``(x, c)`` of a curated dataset (see :meth:`sample_episodes` for endpoints)."""
        ds = self.sample_episodes(n, rng)
        return ds.x, ds.c

    def generate(self, c, rng=None) -> np.ndarray:
        raise ControlNotAnInputError(
            "MazeTask.generate(c) is not available: travel distance is an outcome of the "
            "demonstrator, not an input. Use sample(n, rng) or sample_episodes(n, rng), which "
            "curate demonstrations so that the measured distance follows the prior.")

    # -- recovery ---------------------------------------------------------
    def recover(self, x) -> Recovery:
        x = self._check_x(x)
        return Recovery.from_values(travel_distance(x),
                                    {"nan in trajectory": np.isnan(x).any(axis=(1, 2))})

    def c_free_residual(self):
        """The path's roughness (RMS second difference over RMS first difference of the xy
        path; Chapter 6). Not zero on true paths, so it is a c-free statistic to match rather
        than a residual; it never needs the travel distance."""
        return _roughness


def _roughness(x):
    """RMS second difference over RMS first difference of each xy path."""
    # Paths of a point mass with bounded force: second differences are small next to first
    # differences. Not zero on true paths, but its distribution does not need the distance.
    x = np.asarray(x, dtype=np.float64)[..., :2]
    d1, d2 = np.diff(x, axis=1), np.diff(x, n=2, axis=1)
    return np.sqrt(np.mean(d2 ** 2, axis=(1, 2))
                   / np.maximum(np.mean(d1 ** 2, axis=(1, 2)), 1e-12))


def _segments_touch_cells(a, d, row, col) -> np.ndarray:
    """Slab test: does segment ``a + t d``, ``t in [0, 1]``,
    meet the closed unit square of cell (row, col)?
    """
    t0, t1 = np.zeros(len(a)), np.ones(len(a))
    for axis, low in ((0, col), (1, row)):
        da, aa = d[:, axis], a[:, axis]
        inside = (aa >= low) & (aa <= low + 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ta, tb = (low - aa) / da, (low + 1 - aa) / da
        still = da == 0
        t0 = np.maximum(t0, np.where(still, np.where(inside, -np.inf, np.inf), np.minimum(ta, tb)))
        t1 = np.minimum(t1, np.where(still, np.where(inside, np.inf, -np.inf), np.maximum(ta, tb)))
    return t0 <= t1


def wall_crossings(layout: MazeLayout, paths) -> np.ndarray:
    """Number of path segments that touch a wall cell, per path (Chapter 6).

    ``paths`` has shape ``(n, T, >=2)`` (channels x, y first).
    Each straight segment between consecutive points is tested exactly against the closed wall
    squares (slab test), not only at its endpoints: a diagonal step can clip a wall corner while
    both of its ends lie in free cells. A segment that leaves the grid counts as well.
    """
    p = check_trajectories(paths, "paths")[:, :, :2]
    n, length = p.shape[:2]
    a = p[:, :-1].reshape(-1, 2)
    d = p[:, 1:].reshape(-1, 2) - a
    # Candidate cells: the closed squares that the segment's bounding box touches.
    lo = np.ceil(np.minimum(a, a + d)).astype(np.int64) - 1
    hi = np.floor(np.maximum(a, a + d)).astype(np.int64)
    rows, cols = layout.shape
    hit = np.zeros(len(a), dtype=bool)
    short = ((hi - lo) <= 2).all(axis=1)
    for dc in range(3):
        for dr in range(3):
            col, row = lo[:, 0] + dc, lo[:, 1] + dr
            cand = short & (col <= hi[:, 0]) & (row <= hi[:, 1])
            outside = (row < 0) | (row >= rows) | (col < 0) | (col >= cols)
            wall = cand & (outside
                           | layout.walls[np.clip(row, 0, rows - 1), np.clip(col, 0, cols - 1)])
            idx = np.flatnonzero(wall & ~hit)
            hit[idx] = _segments_touch_cells(a[idx], d[idx], row[idx], col[idx])
    # Long segments (rare: coarse paths or model samples) are tested against every wall.
    idx = np.flatnonzero(~short)
    for r, c in np.argwhere(layout.walls):
        if idx.size == 0:
            break
        touched = _segments_touch_cells(a[idx], d[idx], r, c)
        hit[idx[touched]] = True
        idx = idx[~touched]
    return hit.reshape(n, length - 1).sum(axis=1)


def pin_endpoints(paths, n: int | None = None):
    """The ``inpaint`` argument that pins each path's start and goal (Chapter 7).

    ``paths`` ``(m, L, >=2)``: trajectories whose first and last positions (channels x, y)
    become the start and goal of plans ``i = 0 .. n - 1`` (default: all ``m``). Pass the result
    as ``model.sample(n, inpaint=...)`` to a model that supports inpainting: plan ``i`` then
    starts and ends exactly where path ``i`` does, as a Diffuser-style planner is conditioned.
    Returns ``(mask, values)``, both ``(n, L, d)``.
    """
    x = check_trajectories(paths, "paths")
    if x.shape[2] < 2:
        raise ValueError(f"paths need the position channels x, y; got {x.shape[2]} channel(s)")
    n = len(x) if n is None else check_positive_int(n, "n")
    if n > len(x):
        raise ValueError(f"n must be <= the {len(x)} paths given; got {n}")
    mask = np.zeros((n,) + x.shape[1:], dtype=bool)
    mask[:, [0, -1], :2] = True
    return mask, np.where(mask, x[:n], 0.0)


def plot_maze(layout, ax=None, x=None, distances=None, n_show: int = 8, cmap: str = "viridis",
              start=None, goal=None):
    """Draw a maze and up to ``n_show`` trajectories coloured by travel distance (Chapter 6).

    ``layout`` is a :class:`MazeLayout` or a maze name; ``x`` optional trajectories
    ``(n, L, >=2)``; ``distances`` defaults to their travel distance;
    ``start``/``goal`` optional ``(n, 2)`` markers.
    Returns the axes.
    """
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    layout = maze_layout(layout) if isinstance(layout, str) else layout
    if not isinstance(layout, MazeLayout):
        raise ValueError(f"layout must be a MazeLayout or a maze name; "
                         f"got {type(layout).__name__}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4 * layout.shape[0] / layout.shape[1]))
    rows, cols = layout.shape
    ax.imshow(layout.walls, cmap="Greys", vmin=0, vmax=1.6, extent=(0, cols, rows, 0),
              interpolation="nearest")
    if x is not None:
        x = check_trajectories(x, "x")
        n_show = min(check_positive_int(n_show, "n_show"), len(x))
        d = travel_distance(x) if distances is None else check_values(distances, "distances")
        if len(d) != len(x):
            raise ValueError(f"distances must have one value per trajectory ({len(x)}); "
                             f"got {len(d)}")
        idx = np.argsort(d)[np.linspace(0, len(d) - 1, n_show).round().astype(int)]
        norm = plt.Normalize(d.min(), d.max() if d.max() > d.min() else d.min() + 1)
        lines = LineCollection([x[i, :, :2] for i in idx], cmap=cmap, norm=norm, linewidths=1.8)
        lines.set_array(d[idx])
        ax.add_collection(lines)
        if start is not None:
            s = np.asarray(start)[idx]
            ax.scatter(s[:, 0], s[:, 1], marker="o", s=22, c=d[idx], cmap=cmap, norm=norm,
                       edgecolors="k", zorder=3)
        if goal is not None:
            g = np.asarray(goal)[idx]
            ax.scatter(g[:, 0], g[:, 1], marker="*", s=60, c=d[idx], cmap=cmap, norm=norm,
                       edgecolors="k", zorder=3)
        ax.figure.colorbar(lines, ax=ax, label="travel distance [cells]", shrink=0.8)
    ax.set_xlim(0, cols)
    ax.set_ylim(rows, 0)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{layout.name} maze")
    return ax


def plot_distance_histogram(task: MazeTask, values_by_label, ax=None, rng=None):
    """Histograms of travel distances against the prior and its
    finite-sample null band (Chapter 6).

    ``values_by_label`` maps a label to distances (or is one array, labelled ``'data'``);
    :func:`physmis_edu.plotting.plot_values` with the task's prior, bins and units.
    Returns the axes.
    """
    from ..plotting import plot_values

    return plot_values(values_by_label, task, bins=task.bins, ax=ax, rng=rng)


__all__ = ["MAZE_LAYOUTS", "DEFAULT_DISTANCE_RANGE", "ControlNotAnInputError", "MazeLayout",
           "maze_layout", "PointMass", "Episodes", "simulate_episodes", "travel_distance",
           "MazeDataset", "MazeTask", "wall_crossings", "pin_endpoints", "plot_maze",
           "plot_distance_histogram"]
