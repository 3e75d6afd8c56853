"""A 1-D temporal U-Net denoiser (introduced in Chapter 5).

Convolutions run along time with the trajectory's channels as features, as in
trajectory-diffusion planners: each level halves the length and widens the
features, then the way up mirrors it with skip connections.
Its convolutions share weights along time, which is why the book tries a
time-correlated deviation kernel for it. Its receptive field is not local at the
book's sizes, though: at L=16 the stacked convolutions already span the whole
trajectory and GroupNorm pools over all time steps (Chapter 5 measures this).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import StepEmbedding


def _groups(channels: int) -> int:
    return math.gcd(8, channels)


class ConvBlock(nn.Sequential):
    """Conv1d -> GroupNorm -> Mish (Chapter 5)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 5):
        super().__init__(nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2),
                         nn.GroupNorm(_groups(c_out), c_out), nn.Mish())


class ResidualBlock(nn.Module):
    """Two conv blocks with the step embedding added in between, plus a skip (Chapter 5)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.block1 = ConvBlock(c_in, c_out)
        self.block2 = ConvBlock(c_out, c_out)
        self.emb = nn.Sequential(nn.Mish(), nn.Linear(emb_dim, c_out))
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.block1(x) + self.emb(emb)[:, :, None]
        return self.block2(h) + self.skip(x)


class TemporalUNet(nn.Module):
    """Denoiser ``(x_t, t, cond) -> (b, L, d)`` on trajectories ``(b, L, d)`` (Chapter 5).

    ``dim`` is the width of the first level, ``dim_mults`` the widening per level.
    Trajectories whose length is not a multiple of ``2 ** (levels - 1)`` are
    zero-padded at the end on the way in and cropped on the way out.
    """

    def __init__(self, channels: int, dim: int = 16, dim_mults=(1, 2, 4),
                 conditional: bool = False):
        super().__init__()
        widths = [channels] + [dim * m for m in dim_mults]
        pairs = list(zip(widths[:-1], widths[1:]))
        emb_dim = 4 * dim
        self.factor = 2 ** (len(pairs) - 1)
        self.embed = StepEmbedding(dim, emb_dim, conditional)
        self.downs = nn.ModuleList()
        for i, (a, b) in enumerate(pairs):
            last = i == len(pairs) - 1
            self.downs.append(nn.ModuleList([
                ResidualBlock(a, b, emb_dim), ResidualBlock(b, b, emb_dim),
                nn.Identity() if last else nn.Conv1d(b, b, 3, stride=2, padding=1)]))
        mid = widths[-1]
        self.mid1, self.mid2 = ResidualBlock(mid, mid, emb_dim), ResidualBlock(mid, mid, emb_dim)
        self.ups = nn.ModuleList()
        for a, b in reversed(pairs[1:]):
            self.ups.append(nn.ModuleList([
                ResidualBlock(2 * b, a, emb_dim), ResidualBlock(a, a, emb_dim),
                nn.ConvTranspose1d(a, a, 4, stride=2, padding=1)]))
        self.final = nn.Sequential(ConvBlock(dim, dim), nn.Conv1d(dim, channels, 1))

    def forward(self, x: torch.Tensor, t: torch.Tensor,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        length = x.shape[1]
        h = x.transpose(1, 2)
        pad = (-length) % self.factor
        if pad:
            h = nn.functional.pad(h, (0, pad))
        emb = self.embed(t, cond)
        skips = []
        for block1, block2, down in self.downs:
            h = block2(block1(h, emb), emb)
            skips.append(h)
            h = down(h)
        h = self.mid2(self.mid1(h, emb), emb)
        for block1, block2, up in self.ups:
            h = torch.cat([h, skips.pop()], dim=1)
            h = up(block2(block1(h, emb), emb))
        return self.final(h)[:, :, :length].transpose(1, 2)
