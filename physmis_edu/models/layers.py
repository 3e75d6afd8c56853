"""Small building blocks shared by the denoisers (introduced in Chapter 5)."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer-style sine/cosine features of integer steps ``t`` (b,) -> (b, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0)
                      * torch.arange(half, device=t.device, dtype=torch.float32)
                      / max(half - 1, 1))
    angles = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([angles.sin(), angles.cos()], dim=1)
    return nn.functional.pad(emb, (0, dim - 2 * half))


class StepEmbedding(nn.Module):
    """Embedding of the diffusion step, plus the scalar control when the model
    is conditional (Chapter 5).
    """

    def __init__(self, dim: int, out_dim: int, conditional: bool):
        super().__init__()
        self.dim = dim
        self.step_mlp = nn.Sequential(nn.Linear(dim, out_dim), nn.Mish(),
                                      nn.Linear(out_dim, out_dim))
        self.cond_mlp = (nn.Sequential(nn.Linear(1, out_dim), nn.Mish(),
                                       nn.Linear(out_dim, out_dim))
                         if conditional else None)

    def forward(self, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.step_mlp(sinusoidal_embedding(t, self.dim))
        if self.cond_mlp is not None:
            emb = emb + self.cond_mlp(cond[:, None])
        return emb
