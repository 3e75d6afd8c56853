"""Denoising diffusion on trajectories, with inpainting (introduced in Chapter 5).

Training noises a clean trajectory ``x0`` to step ``t``,
``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps``, and teaches a denoiser to
predict ``x0`` (or ``eps``). Sampling runs the chain back from pure noise with
ancestral (DDPM) steps through the posterior ``q(x_{t-1} | x_t, x0_hat)``.

Inpainting: at every step the predicted ``x0`` is overwritten with the pinned
values and the pinned entries of ``x_{t-1}`` are replaced by the pinned values
noised to level ``t - 1``, so the rest of the trajectory is generated around them.
The last step returns ``x0_hat`` itself, so pinned entries come out exact.
A planner that fixes start and goal (Chapter 7) is trained for it instead
(``plan_endpoints``): the ends stay clean in training and in sampling, as in Diffuser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .._validation import check_positive_int
from .base import GenerativeModel
from .mlp import MLPDenoiser
from .unet import TemporalUNet


class CosineSchedule(nn.Module):
    """The cosine noise schedule of Nichol and Dhariwal (2021), as buffers (Chapter 5).

    ``abar(t) = cos^2(((t / T) + s) / (1 + s) * pi / 2)`` normalised to ``abar(0) = 1``,
    with each ``beta_t`` capped at 0.999 so that the last step stays invertible.
    """

    def __init__(self, steps: int, s: float = 0.008):
        super().__init__()
        t = torch.arange(steps + 1, dtype=torch.float64) / steps
        f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        alphas = 1 - betas
        abar = torch.cumprod(alphas, 0)
        abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        buffers = {
            "abar": abar,
            "abar_prev": abar_prev,
            # Posterior q(x_{t-1} | x_t, x0): mean = coef_x0 * x0 + coef_xt * x_t.
            "coef_x0": betas * abar_prev.sqrt() / (1 - abar),
            "coef_xt": (1 - abar_prev) * alphas.sqrt() / (1 - abar),
            "posterior_std": (betas * (1 - abar_prev) / (1 - abar)).sqrt(),
        }
        for name, value in buffers.items():
            # Deterministic from ``steps``: moved with the module, not saved.
            self.register_buffer(name, value.float(), persistent=False)
        self.steps = steps


class DiffusionNet(nn.Module):
    """A denoiser and its schedule in one module,
    so that ``.to(device)`` moves both (Chapter 5).
    """

    def __init__(self, denoiser: nn.Module, steps: int, channels: int):
        super().__init__()
        self.denoiser = denoiser
        self.schedule = CosineSchedule(steps)
        # Per-channel range of the normalised training data, for clipping the predicted x0.
        self.register_buffer("data_lo", torch.full((channels,), -float("inf")))
        self.register_buffer("data_hi", torch.full((channels,), float("inf")))


@dataclass(eq=False, kw_only=True)
class _Diffusion(GenerativeModel):
    """Shared training loss and sampler of the two diffusion models (Chapter 5).

    ``diffusion_steps`` is the number of noise levels T (training and sampling);
    ``predict`` is ``'x0'`` (the clean trajectory, default) or ``'eps'`` (the noise);
    ``clip_x0`` clips the predicted ``x0`` to each channel's training range while sampling,
    as the reference DDPM and Diffuser samplers do (without it, an under-trained denoiser fed
    its own out-of-distribution ``x_t`` can run away to values far outside the data).
    On these tiny budgets ``'eps'`` blows up in the last sampling steps, where
    ``x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar)`` amplifies its errors; hence the default.

    ``plan_endpoints`` makes the model a planner in the manner of Diffuser (Chapter 7): in
    training the first and last step of every noised trajectory are left clean (Diffuser's
    ``apply_conditioning`` in its loss), so the denoiser learns to complete a trajectory between
    given ends; sampling then needs ``inpaint`` pinning every channel of those two steps, and
    holds the pinned entries at their clean values at every step. Without it, inpainting noises
    the pinned values to each step's level (as in RePaint), which a denoiser never trained with
    pinned ends does not follow: its trajectories jump to the pins at the first and last step.
    """

    diffusion_steps: int = 50
    predict: str = "x0"
    clip_x0: bool = True
    plan_endpoints: bool = False

    supports_inpaint = True

    def __post_init__(self):
        super().__post_init__()
        self.diffusion_steps = check_positive_int(self.diffusion_steps, "diffusion_steps",
                                                  minimum=2)
        if self.predict not in ("x0", "eps"):
            raise ValueError(f"predict must be 'x0' or 'eps'; got {self.predict!r}")
        if not isinstance(self.clip_x0, bool):
            raise ValueError(f"clip_x0 must be True or False; got {self.clip_x0!r}")
        if not isinstance(self.plan_endpoints, bool):
            raise ValueError(f"plan_endpoints must be True or False; got {self.plan_endpoints!r}")

    def _build(self, length: int, channels: int) -> nn.Module:
        return DiffusionNet(self._denoiser(length, channels), self.diffusion_steps, channels)

    def _prepare(self, x):
        self.net_.data_lo.copy_(x.amin(dim=(0, 1)))
        self.net_.data_hi.copy_(x.amax(dim=(0, 1)))

    def _denoiser(self, length: int, channels: int) -> nn.Module:
        raise NotImplementedError

    def _loss(self, x0, cond, gen):
        sched = self.net_.schedule
        t = torch.randint(sched.steps, (x0.shape[0],), generator=gen, device=x0.device)
        eps = torch.randn(x0.shape, generator=gen, device=x0.device)
        abar = sched.abar[t][:, None, None]
        if self.plan_endpoints:
            ends = self._ends(x0)
            eps = torch.where(ends, 0.0, eps)
        xt = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
        if self.plan_endpoints:
            xt = torch.where(ends, x0, xt)
        out = self.net_.denoiser(xt, t, cond)
        if self.plan_endpoints and self.predict == "x0":
            out = torch.where(ends, x0, out)
        target = x0 if self.predict == "x0" else eps
        return nn.functional.mse_loss(out.float(), target)

    @staticmethod
    def _ends(x: torch.Tensor) -> torch.Tensor:
        """Boolean ``(1, L, 1)``: true at the first and the last step."""
        ends = torch.zeros((1, x.shape[1], 1), dtype=torch.bool, device=x.device)
        ends[:, [0, -1]] = True
        return ends

    def _generate(self, n, cond, pin, gen):
        sched = self.net_.schedule
        dev = sched.abar.device
        shape = (n, *self.shape_)
        if self.plan_endpoints and (pin is None or not bool(pin[0][:, [0, -1]].all())):
            raise ValueError("this model was trained as a planner (plan_endpoints=True): "
                             "sample it with inpaint pinning every channel of the first and "
                             "last step, e.g. physmis_edu.tasks.maze.pin_endpoints(paths)")
        clean = self.plan_endpoints
        x = torch.randn(shape, generator=gen, device=dev)
        if clean:
            x = torch.where(pin[0], pin[1], x)
        for step in reversed(range(sched.steps)):
            t = torch.full((n,), step, device=dev, dtype=torch.long)
            out = self.net_.denoiser(x, t, cond).float()
            if self.predict == "x0":
                x0 = out
            else:
                x0 = (x - (1 - sched.abar[step]).sqrt() * out) / sched.abar[step].sqrt()
            if self.clip_x0:
                x0 = torch.maximum(torch.minimum(x0, self.net_.data_hi), self.net_.data_lo)
            if pin is not None:
                x0 = torch.where(pin[0], pin[1], x0)
            if step == 0:
                # coef_x0[0] = 1 and coef_xt[0] = 0: the last step is x0_hat itself.
                x = x0
                break
            x = sched.coef_x0[step] * x0 + sched.coef_xt[step] * x
            x = x + sched.posterior_std[step] * torch.randn(shape, generator=gen, device=dev)
            if clean:
                x = torch.where(pin[0], pin[1], x)
            elif pin is not None:
                noise = torch.randn(shape, generator=gen, device=dev)
                known = (sched.abar_prev[step].sqrt() * pin[1]
                         + (1 - sched.abar_prev[step]).sqrt() * noise)
                x = torch.where(pin[0], known, x)
        return x


_COMMON = {
    "ci": dict(train_steps=1500, batch_size=256, lr=2e-3, diffusion_steps=50),
    "cpu": dict(train_steps=3000, batch_size=256, lr=1e-3, diffusion_steps=50),
    "gpu": dict(train_steps=10_000, batch_size=512, lr=5e-4, diffusion_steps=100),
}


@dataclass(eq=False, kw_only=True)
class DiffusionUNet(_Diffusion):
    """Trajectory diffusion with a 1-D temporal U-Net denoiser (Chapter 5).

    Hyper-parameters (besides those of :class:`GenerativeModel`): ``dim`` (width of
    the first U-Net level), ``dim_mults`` (widening per level), ``diffusion_steps``
    (T, cosine schedule) and ``predict`` (``'x0'`` or ``'eps'``).
    Supports ``inpaint`` and conditioning on a scalar ``cond``.
    """

    dim: int = 16
    dim_mults: tuple = (1, 2, 4)

    name = "diffusion (U-Net)"
    short_name = "U-Net"
    relative_cost = 2.4
    PROFILE_CONFIGS = {
        "ci": {**_COMMON["ci"], "dim": 16, "dim_mults": (1, 2), "train_steps": 800,
               "batch_size": 128},
        "cpu": {**_COMMON["cpu"], "dim": 24, "dim_mults": (1, 2), "train_steps": 1500},
        "gpu": {**_COMMON["gpu"], "dim": 64, "dim_mults": (1, 2, 4)},
    }

    def __post_init__(self):
        super().__post_init__()
        self.dim = check_positive_int(self.dim, "dim")
        if not isinstance(self.dim_mults, (tuple, list)):
            raise ValueError("dim_mults must be a non-empty sequence of positive integers, "
                             f"e.g. (1, 2); got {self.dim_mults!r}")
        mults = tuple(self.dim_mults)
        if not mults or any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in mults):
            raise ValueError(f"dim_mults must be a non-empty sequence of positive integers; "
                             f"got {self.dim_mults!r}")
        self.dim_mults = mults

    def _denoiser(self, length, channels):
        return TemporalUNet(channels, self.dim, self.dim_mults, conditional=self.conditional_)


@dataclass(eq=False, kw_only=True)
class DiffusionMLP(_Diffusion):
    """Trajectory diffusion with an MLP denoiser on the flattened trajectory (Chapter 5).

    Hyper-parameters: ``hidden`` (units per layer), ``layers`` (hidden layers),
    ``diffusion_steps`` and ``predict`` (default ``'x0'``).
    Supports ``inpaint`` and conditioning on a scalar ``cond``.
    """

    hidden: int = 256
    layers: int = 3

    name = "diffusion (MLP)"
    short_name = "MLP diff"
    relative_cost = 1.0
    PROFILE_CONFIGS = {
        "ci": {**_COMMON["ci"], "hidden": 256, "layers": 3},
        "cpu": {**_COMMON["cpu"], "hidden": 384, "layers": 3},
        "gpu": {**_COMMON["gpu"], "hidden": 1024, "layers": 4},
    }

    def __post_init__(self):
        super().__post_init__()
        self.hidden = check_positive_int(self.hidden, "hidden")
        self.layers = check_positive_int(self.layers, "layers")

    def _denoiser(self, length, channels):
        return MLPDenoiser(length, channels, self.hidden, self.layers,
                           conditional=self.conditional_)
