"""Double pendulum: control = total mechanical energy.

Introduced in Chapter 8; also an applied task of Chapter 6's kernel panel.

Two point masses ``m1``, ``m2`` on massless rods ``l1``, ``l2`` under gravity ``g``; angles
``theta1``, ``theta2`` from the downward vertical. The potential is measured from the rest state,
so the minimum potential is 0 and every energy ``E >= 0`` is reachable.
Initial conditions are placed exactly on the energy shell, trajectories integrated by batched
RK4 and sub-sampled to a fixed length.
Low energies give nearly periodic small oscillations; chaos grows with energy
(:meth:`DoublePendulum.finite_time_lyapunov`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import (as_rng, check_positive, check_positive_int, check_trajectories,
                           check_values)
from .base import Recovery, Task

REPRESENTATIONS = {"sincos": 6, "angles": 2}


def _unit_circle_residual(x):
    """RMS distance of each ``(sin, cos)`` pair from the unit circle (``sincos`` frames)."""
    # Each (sin theta, cos theta) pair lies on the unit circle, whatever the energy.
    x = np.asarray(x, dtype=np.float64)
    norms = np.sqrt(x[..., [0, 2]] ** 2 + x[..., [1, 3]] ** 2)
    return np.sqrt(np.mean((norms - 1.0) ** 2, axis=(1, 2)))


def _wrap(angle):
    """Angles into ``[-pi, pi)``."""
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


@dataclass
class DoublePendulum(Task):
    """Double pendulum of point masses with control = total energy ``E`` (Chapter 6).

    Parameters
    ----------
    lo, hi : float
        Energy range of the prior (joules with the default SI parameters), ``0 <= lo < hi``.
        The default ``[2, 40]`` runs from small nearly periodic swings to chaotic motion
        (the maximum potential, both masses straight up,
        is ``2 g ((m1 + m2) l1 + m2 l2)`` = 58.9 J).
    m1, m2, l1, l2, g : float
        Masses, rod lengths and gravity (all > 0).
    length : int
        Stored frames ``L`` (>= 2; >= 5 for ``representation='angles'``).
    dt : float
        RK4 step (<= 0.005 s, where the relative energy error stays below 1e-4 over the horizon).
    stride : int
        RK4 steps between stored frames (frame spacing ``stride * dt``).
    representation : str
        ``'sincos'``: channels ``(sin theta1, cos theta1, sin theta2, cos theta2, omega1, omega2)``
        (d = 6); ``'angles'``: wrapped angles ``(theta1, theta2)`` in ``[-pi, pi)`` (d = 2), the
        ill-conditioned variant whose recovery needs finite-difference velocities.

    Nuisance ``z``: angles uniform over the part of the torus with potential <= E (rejection from a
    box that bounds it), and a uniform direction of the angular velocity, scaled to hit E exactly.
    """

    lo: float = 2.0
    hi: float = 40.0
    m1: float = 1.0
    m2: float = 1.0
    l1: float = 1.0
    l2: float = 1.0
    g: float = 9.81
    length: int = 64
    dt: float = 0.005
    stride: int = 10
    representation: str = "sincos"

    name = "double pendulum"
    control_name = "energy"
    units = "J"
    description = ("Two point masses on rigid rods, potential measured from the rest state; "
                   "nuisance: the point on the energy shell where the motion starts.")

    def __post_init__(self):
        for name in ("m1", "m2", "l1", "l2", "g"):
            setattr(self, name, check_positive(getattr(self, name), name))
        super().__post_init__()
        if self.lo < self.min_energy:
            raise ValueError(f"energy range [{self.lo}, {self.hi}] goes below the minimum "
                             f"potential energy {self.min_energy:g} (the pendulum at rest): "
                             "no state has that energy")
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"representation must be one of {sorted(REPRESENTATIONS)}; "
                             f"got {self.representation!r}")
        self.channels = REPRESENTATIONS[self.representation]
        minimum = 5 if self.representation == "angles" else 2
        self.length = check_positive_int(self.length, "length (horizon)", minimum=minimum)
        self.dt = check_positive(self.dt, "dt")
        if self.dt > 0.005:
            raise ValueError(f"dt must be <= 0.005 s so that RK4 keeps the relative energy error "
                             f"below 1e-4; got {self.dt}")
        self.stride = check_positive_int(self.stride, "stride")

    # -- physics ------------------------------------------------------------
    min_energy = 0.0

    @property
    def max_potential(self) -> float:
        """Potential with both masses straight up; above it the pendulum can turn over."""
        return 2.0 * self.g * ((self.m1 + self.m2) * self.l1 + self.m2 * self.l2)

    @property
    def frame_dt(self) -> float:
        """Time between stored frames."""
        return self.dt * self.stride

    @property
    def duration(self) -> float:
        """Time spanned by one stored trajectory."""
        return self.frame_dt * (self.length - 1)

    def potential(self, theta1, theta2) -> np.ndarray:
        """``V = g ((m1 + m2) l1 (1 - cos theta1) + m2 l2 (1 - cos theta2))``, zero at rest."""
        return self.g * ((self.m1 + self.m2) * self.l1 * (1 - np.cos(theta1))
                         + self.m2 * self.l2 * (1 - np.cos(theta2)))

    def kinetic(self, theta1, theta2, omega1, omega2) -> np.ndarray:
        """``T = 0.5 omega^T M(theta) omega`` with the double pendulum's mass matrix."""
        a, d = (self.m1 + self.m2) * self.l1 ** 2, self.m2 * self.l2 ** 2
        b = self.m2 * self.l1 * self.l2 * np.cos(theta1 - theta2)
        return 0.5 * a * omega1 ** 2 + 0.5 * d * omega2 ** 2 + b * omega1 * omega2

    def energy(self, state) -> np.ndarray:
        """Total energy of states ``(..., 4)`` = ``(theta1, theta2, omega1, omega2)``."""
        s = np.asarray(state, dtype=np.float64)
        return (self.potential(s[..., 0], s[..., 1])
                + self.kinetic(s[..., 0], s[..., 1], s[..., 2], s[..., 3]))

    def derivative(self, state) -> np.ndarray:
        """Time derivative of states ``(..., 4)``:
        Lagrange's equations solved for the accelerations.

        ``M(theta) alpha = f`` with
        ``M = [[(m1+m2) l1^2, m2 l1 l2 cos(d)], [m2 l1 l2 cos(d), m2 l2^2]]``,
        ``d = theta1 - theta2``, ``f1 = -m2 l1 l2 sin(d) omega2^2 - (m1+m2) g l1 sin(theta1)``,
        ``f2 = m2 l1 l2 sin(d) omega1^2 - m2 g l2 sin(theta2)``, solved by Cramer's rule
        (``det M = m2 l1^2 l2^2 (m1 + m2 sin^2 d) > 0``).
        """
        s = np.asarray(state, dtype=np.float64)
        return np.moveaxis(self._rhs(np.moveaxis(s, -1, 0)), 0, -1)

    def _rhs(self, s):
        # Channel-first layout (4, n): each row is contiguous, which roughly halves the cost of
        # the element-wise work that dominates a batched RK4 step.
        t1, t2, w1, w2 = s[0], s[1], s[2], s[3]
        m12, m2, l1, l2, g = self.m1 + self.m2, self.m2, self.l1, self.l2, self.g
        a, d, b0 = m12 * l1 * l1, m2 * l2 * l2, m2 * l1 * l2
        delta = t1 - t2
        b = b0 * np.cos(delta)
        sin_d = b0 * np.sin(delta)
        f1 = -sin_d * w2 * w2 - (m12 * g * l1) * np.sin(t1)
        f2 = sin_d * w1 * w1 - (m2 * g * l2) * np.sin(t2)
        inv_det = 1.0 / (a * d - b * b)
        out = np.empty_like(s)
        out[0], out[1] = w1, w2
        out[2] = (d * f1 - b * f2) * inv_det
        out[3] = (a * f2 - b * f1) * inv_det
        return out

    def integrate(self, state0, n_frames: int, stride: int | None = None,
                  dt: float | None = None) -> np.ndarray:
        """Batched classical RK4 from states ``(n, 4)``; returns float64 ``(n, n_frames, 4)``.

        Frame 0 is ``state0``; consecutive frames are ``stride`` RK4 steps of ``dt`` apart
        (defaults: the task's). Angles are not wrapped.
        """
        s0 = np.array(state0, dtype=np.float64)
        if s0.ndim != 2 or s0.shape[1] != 4 or not np.isfinite(s0).all():
            raise ValueError(f"state0 must be a finite array of shape (n, 4); "
                             f"got shape {s0.shape}")
        n_frames = check_positive_int(n_frames, "n_frames")
        stride = self.stride if stride is None else check_positive_int(stride, "stride")
        h = self.dt if dt is None else check_positive(dt, "dt")
        out = np.empty((n_frames, 4, s0.shape[0]))
        out[0] = s = np.ascontiguousarray(s0.T)
        f = self._rhs
        for t in range(1, n_frames):
            for _ in range(stride):
                k1 = f(s)
                k2 = f(s + (0.5 * h) * k1)
                k3 = f(s + (0.5 * h) * k2)
                k4 = f(s + h * k3)
                k2 += k3
                k2 *= 2.0
                k1 += k2
                k1 += k4
                s = s + (h / 6.0) * k1
            out[t] = s
        return out.transpose(2, 0, 1).copy()

    def initial_states(self, energy, rng=None) -> np.ndarray:
        """States ``(n, 4)`` with total energy exactly ``energy`` (one per value) (Chapter 6).

        Angles are drawn uniformly in a box that contains the region ``V(theta) <= E``
        (from ``V >= (m1+m2) g l1 (1 - cos theta1)`` and ``V >= m2 g l2 (1 - cos theta2)``) and
        rejected where ``V > E``; the angular velocity gets a uniform direction ``u`` and the
        speed ``sqrt(2 (E - V) / u^T M u)``.
        """
        E = check_values(energy, "energy")
        if (E < self.min_energy).any():
            raise ValueError(f"energy must be >= {self.min_energy:g} (the pendulum at rest); "
                             f"got min {E.min():g}")
        rng = as_rng(rng)

        def bound(scale):
            return np.arccos(np.clip(1.0 - E / scale, -1.0, 1.0))

        b1 = bound((self.m1 + self.m2) * self.g * self.l1)
        b2 = bound(self.m2 * self.g * self.l2)
        theta = np.empty((E.size, 2))
        todo = np.arange(E.size)
        while todo.size:
            t = (rng.uniform(-1.0, 1.0, size=(todo.size, 2))
                 * np.stack([b1[todo], b2[todo]], axis=1))
            ok = self.potential(t[:, 0], t[:, 1]) <= E[todo]
            theta[todo[ok]] = t[ok]
            todo = todo[~ok]
        phi = rng.uniform(0.0, 2 * np.pi, size=E.size)
        u1, u2 = np.cos(phi), np.sin(phi)
        t_unit = self.kinetic(theta[:, 0], theta[:, 1], u1, u2)
        speed = np.sqrt(np.maximum(E - self.potential(theta[:, 0], theta[:, 1]), 0.0) / t_unit)
        return np.stack([theta[:, 0], theta[:, 1], speed * u1, speed * u2], axis=1)

    # -- Task interface ------------------------------------------------------
    def simulate(self, c, rng=None) -> np.ndarray:
        """Full states ``(n, L, 4)`` (float64, angles unwrapped) for energies ``c``."""
        E = self.check_c(c)
        return self.integrate(self.initial_states(E, rng), self.length)

    def to_representation(self, states) -> np.ndarray:
        """States ``(n, L, 4)`` in the task's representation, float32 ``(n, L, d)``."""
        s = np.asarray(states, dtype=np.float64)
        if self.representation == "sincos":
            x = np.stack([np.sin(s[..., 0]), np.cos(s[..., 0]),
                          np.sin(s[..., 1]), np.cos(s[..., 1]),
                          s[..., 2], s[..., 3]], axis=-1)
        else:
            x = _wrap(s[..., :2])
        return x.astype(np.float32)

    def generate(self, c, rng=None) -> np.ndarray:
        return self.to_representation(self.simulate(c, rng))

    def recover(self, x) -> Recovery:
        """Energy of each trajectory: the mean over its frames of ``E(theta_t, omega_t)``.

        Why the mean and not the first frame: energy is conserved, so every frame measures the
        same ``c``; on clean data both agree to integration error, but the mean averages
        independent per-frame errors of generated samples (no frame is privileged, and generative
        models are often worst at the sequence boundaries) and reflects the whole trajectory the
        model produced. Its sensitivity to noise is then dominated by the curvature of ``E``
        (velocities enter squared), which is what the kernel view predicts.
        ``'sincos'``: ``theta = atan2(sin, cos)`` (insensitive to the norm of the pair) and the
        stored velocities. ``'angles'``: see :meth:`recover_from_angles`.
        """
        x = self._check_x(x)
        if self.representation == "angles":
            return self.recover_from_angles(x)
        t1 = np.arctan2(x[..., 0], x[..., 1])
        t2 = np.arctan2(x[..., 2], x[..., 3])
        with np.errstate(invalid="ignore"):
            e = (self.potential(t1, t2) + self.kinetic(t1, t2, x[..., 4], x[..., 5])).mean(axis=1)
        return Recovery.from_values(e, {"nan in trajectory": np.isnan(x).any(axis=(1, 2))})

    def c_free_residual(self):
        """In the ``sincos`` representation: the RMS distance of each ``(sin, cos)`` pair from
        the unit circle, a kinematic identity that holds at any energy (Chapter 6). ``None`` for
        ``angles``, which has no such identity."""
        return _unit_circle_residual if self.representation == "sincos" else None

    def recover_from_angles(self, angles) -> Recovery:
        """Energy from angles alone: the ill-conditioned recovery (Chapter 6).

        ``angles`` ``(n, L, >=2)`` (wrapped or not) are unwrapped along time (assumes less than
        half a turn between frames), differentiated with the fourth-order central stencil
        ``(-a[t+2] + 8 a[t+1] - 8 a[t-1] + a[t-2]) / (12 dt_frame)``, and the energy is averaged
        over the ``L - 4`` interior frames. Independent noise of size ``s`` in the angles becomes
        velocity noise of ``sqrt(1 + 64 + 64 + 1) / 12 * s / dt_frame``, about
        ``0.95 s / dt_frame`` (the root sum of squares of the stencil's weights), which the
        quadratic kinetic energy turns into an upward bias.
        """
        a = check_trajectories(angles, "angles", allow_nan=True)
        if a.shape[1] < 5:
            raise ValueError(f"angles need at least 5 frames for the finite-difference stencil; "
                             f"got L={a.shape[1]}")
        nan = np.isnan(a[..., :2]).any(axis=(1, 2))
        a = np.unwrap(np.where(np.isnan(a[..., :2]), 0.0, a[..., :2]), axis=1)
        w = (-a[:, 4:] + 8 * a[:, 3:-1] - 8 * a[:, 1:-3] + a[:, :-4]) / (12.0 * self.frame_dt)
        mid = a[:, 2:-2]
        e = (self.potential(mid[..., 0], mid[..., 1])
             + self.kinetic(mid[..., 0], mid[..., 1], w[..., 0], w[..., 1])).mean(axis=1)
        return Recovery.from_values(e, {"nan in trajectory": nan})

    # -- chaos ----------------------------------------------------------------
    def finite_time_lyapunov(self, energies, duration: float = 10.0, n_initial: int = 8,
                             rng=None, separation: float = 1e-8,
                             renormalise_every: float = 0.1) -> np.ndarray:
        """Chaos indicator per energy: the mean finite-time Lyapunov exponent (1/s) (Chapter 6).

        For each energy, ``n_initial`` states on the shell and a neighbour displaced by
        ``separation`` in ``theta1`` are integrated for ``duration`` seconds; the separation is
        measured in state space and renormalised every ``renormalise_every`` seconds (Benettin's
        method), and the mean log growth rate is averaged over the initial states.
        Regular motion still gives a small positive value over a finite time (separations grow
        linearly, and ``log(t) / t`` decays slowly): about 0.2-0.3 per second over 10 s at low
        energy with the default parameters, against 1-2 per second for chaotic motion near 40 J.
        Compare energies with the same ``duration``.
        """
        E = check_values(energies, "energies")
        duration = check_positive(duration, "duration")
        n_initial = check_positive_int(n_initial, "n_initial")
        separation = check_positive(separation, "separation")
        steps_per = max(1, int(round(check_positive(renormalise_every, "renormalise_every")
                                     / self.dt)))
        n_blocks = max(1, int(round(duration / (steps_per * self.dt))))
        base = self.initial_states(np.repeat(E, n_initial), rng)
        near = base.copy()
        near[:, 0] += separation
        log_growth = np.zeros(len(base))
        for _ in range(n_blocks):
            base = self.integrate(base, 2, stride=steps_per)[:, -1]
            near = self.integrate(near, 2, stride=steps_per)[:, -1]
            diff = near - base
            dist = np.linalg.norm(diff, axis=1)
            log_growth += np.log(dist / separation)
            near = base + diff * (separation / dist)[:, None]
        rate = log_growth / (n_blocks * steps_per * self.dt)
        return rate.reshape(E.size, n_initial).mean(axis=1)

    # -- helpers ----------------------------------------------------------------
    def angles_of(self, x) -> np.ndarray:
        """``(theta1, theta2)`` of trajectories in the task's representation, ``(n, L, 2)``."""
        x = self._check_x(x)
        if self.representation == "angles":
            return x[..., :2]
        return np.stack([np.arctan2(x[..., 0], x[..., 1]), np.arctan2(x[..., 2], x[..., 3])],
                        axis=-1)

    def bob_positions(self, angles) -> tuple[np.ndarray, np.ndarray]:
        """Cartesian positions of the two masses, ``(..., 2)`` each, pivot at the origin, y up."""
        a = np.asarray(angles, dtype=np.float64)
        p1 = np.stack([self.l1 * np.sin(a[..., 0]), -self.l1 * np.cos(a[..., 0])], axis=-1)
        p2 = p1 + np.stack([self.l2 * np.sin(a[..., 1]), -self.l2 * np.cos(a[..., 1])], axis=-1)
        return p1, p2


def plot_strobe(task: DoublePendulum, x, index: int = 0, ax=None, n_strobe: int = 12,
                cmap: str = "viridis"):
    """Strobe picture of one trajectory: rods at ``n_strobe`` instants, darker = later (Chapter 6).

    ``x`` is ``(n, L, d)`` in the task's representation; the trace of the outer mass is drawn
    over all frames. Returns the axes.
    """
    import matplotlib.pyplot as plt

    angles = task.angles_of(x)
    if not (isinstance(index, (int, np.integer)) and 0 <= index < len(angles)):
        raise ValueError(f"index must be an integer in [0, {len(angles)}); got {index!r}")
    n_strobe = check_positive_int(n_strobe, "n_strobe")
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    p1, p2 = task.bob_positions(angles[index])
    ax.plot(p2[:, 0], p2[:, 1], color="0.6", lw=0.8, zorder=1)
    colours = plt.get_cmap(cmap)(np.linspace(0.15, 1.0, min(n_strobe, len(p1))))
    for k, t in enumerate(np.linspace(0, len(p1) - 1, len(colours)).round().astype(int)):
        xs = [0.0, p1[t, 0], p2[t, 0]]
        ys = [0.0, p1[t, 1], p2[t, 1]]
        ax.plot(xs, ys, "-o", color=colours[k], lw=1.5, ms=4,
                alpha=0.35 + 0.65 * k / max(1, len(colours) - 1))
    reach = task.l1 + task.l2
    ax.plot([0], [0], "ks", ms=5)
    ax.set_xlim(-1.1 * reach, 1.1 * reach)
    ax.set_ylim(-1.1 * reach, 1.1 * reach)
    ax.set_aspect("equal")
    energy = task.measure(np.asarray(x)[index: index + 1])[0]
    ax.set_title(f"double pendulum, E = {energy:.1f} {task.units}, {task.duration:.2f} s")
    return ax


def plot_energy_histogram(task: DoublePendulum, values_by_label, ax=None, rng=None):
    """Histograms of recovered energies against the prior and its null band (Chapter 6).

    ``values_by_label`` maps a label to energies (or is one array, labelled ``'data'``);
    :func:`physmis_edu.plotting.plot_values` with the task's prior, bins and units.
    Returns the axes.
    """
    from ..plotting import plot_values

    return plot_values(values_by_label, task, ax=ax, rng=rng)


__all__ = ["REPRESENTATIONS", "DoublePendulum", "plot_strobe", "plot_energy_histogram"]
