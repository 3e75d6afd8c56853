"""An MLP denoiser on the flattened trajectory (introduced in Chapter 5).

Every time step sees every other one from the first layer on: no locality
built in, the simplest denoiser a reader can hold in their head.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import StepEmbedding


class MLPDenoiser(nn.Module):
    """Denoiser ``(x_t, t, cond) -> (b, L, d)``:
    ``layers`` hidden layers of ``hidden`` units (Chapter 5).
    """

    def __init__(self, length: int, channels: int, hidden: int = 256, layers: int = 3,
                 emb_dim: int = 64, conditional: bool = False):
        super().__init__()
        self.embed = StepEmbedding(emb_dim, emb_dim, conditional)
        size = length * channels
        widths = [size + emb_dim] + [hidden] * layers
        body = []
        for a, b in zip(widths[:-1], widths[1:]):
            body += [nn.Linear(a, b), nn.SiLU()]
        self.body = nn.Sequential(*body, nn.Linear(hidden, size))

    def forward(self, x: torch.Tensor, t: torch.Tensor,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        flat = torch.cat([x.flatten(1), self.embed(t, cond)], dim=1)
        return self.body(flat).view_as(x)
