"""A variational autoencoder with a Gaussian likelihood (introduced in Chapter 5).

An MLP encoder maps the flattened trajectory to ``q(z | x) = N(mu, diag sigma^2)``,
an MLP decoder maps ``z`` back to the mean of ``p(x | z) = N(dec(z), diag s^2)``
with one learned scale ``s`` per output entry (the "sigma-VAE" choice, which
balances reconstruction against the KL term without a hand-tuned weight).
Sampling draws ``z ~ N(0, I)`` and returns ``dec(z)``, the decoder mean; set
``decode_noise=True`` to add the likelihood's noise as well.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .._validation import check_nonnegative, check_positive_int
from .base import GenerativeModel


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers += [nn.Linear(a, b), nn.SiLU()]
    return nn.Sequential(*layers, nn.Linear(sizes[-2], sizes[-1]))


class VAENet(nn.Module):
    """Encoder, decoder and per-entry log-scale of the likelihood (Chapter 5)."""

    def __init__(self, length: int, channels: int, hidden: int, layers: int, latent: int,
                 conditional: bool):
        super().__init__()
        size = length * channels
        extra = 1 if conditional else 0
        self.latent = latent
        self.encoder = _mlp([size + extra] + [hidden] * layers + [2 * latent])
        self.decoder = _mlp([latent + extra] + [hidden] * layers + [size])
        self.log_scale = nn.Parameter(torch.zeros(size))

    def decode(self, z: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if cond is not None:
            z = torch.cat([z, cond[:, None]], dim=1)
        return self.decoder(z)


@dataclass(eq=False, kw_only=True)
class VAE(GenerativeModel):
    """MLP variational autoencoder on flattened trajectories (Chapter 5).

    Hyper-parameters (besides those of :class:`GenerativeModel`): ``hidden``, ``layers``
    (per encoder and decoder), ``latent`` (size of z), ``beta`` (weight of the KL term)
    and ``decode_noise`` (add the likelihood's noise when sampling).
    Conditional on a scalar ``cond`` when fit with one (both encoder and decoder see it).
    No inpainting.
    """

    hidden: int = 256
    layers: int = 2
    latent: int = 8
    beta: float = 1.0
    decode_noise: bool = False

    name = "VAE"
    short_name = "VAE"
    relative_cost = 0.45
    PROFILE_CONFIGS = {
        "ci": dict(train_steps=1500, batch_size=256, lr=2e-3, hidden=256, layers=2, latent=8),
        "cpu": dict(train_steps=3000, batch_size=256, lr=1e-3, hidden=384, layers=3, latent=16),
        "gpu": dict(train_steps=10_000, batch_size=512, lr=5e-4, hidden=1024, layers=3, latent=32),
    }

    def __post_init__(self):
        super().__post_init__()
        self.hidden = check_positive_int(self.hidden, "hidden")
        self.layers = check_positive_int(self.layers, "layers")
        self.latent = check_positive_int(self.latent, "latent")
        self.beta = check_nonnegative(self.beta, "beta")
        if not isinstance(self.decode_noise, bool):
            raise ValueError(f"decode_noise must be True or False; got {self.decode_noise!r}")

    def _build(self, length, channels):
        return VAENet(length, channels, self.hidden, self.layers, self.latent, self.conditional_)

    def _loss(self, x, cond, gen):
        net = self.net_
        flat = x.flatten(1)
        enc_in = flat if cond is None else torch.cat([flat, cond[:, None]], dim=1)
        mu, log_var = net.encoder(enc_in).float().chunk(2, dim=1)
        z = mu + (0.5 * log_var).exp() * torch.randn(mu.shape, generator=gen, device=mu.device)
        mean = net.decode(z, cond).float()
        log_scale = net.log_scale.clamp(min=-7.0)
        nll = (0.5 * ((flat - mean) / log_scale.exp()) ** 2 + log_scale
               + 0.5 * math.log(2 * math.pi))
        kl = 0.5 * (mu ** 2 + log_var.exp() - 1.0 - log_var)
        # Per trajectory entry, so the learning rate does not depend on L * d.
        return (nll.sum(1) + self.beta * kl.sum(1)).mean() / flat.shape[1]

    def _generate(self, n, cond, pin, gen):
        net = self.net_
        dev = net.log_scale.device
        z = torch.randn((n, net.latent), generator=gen, device=dev)
        x = net.decode(z, cond)
        if self.decode_noise:
            scale = net.log_scale.clamp(min=-7.0).exp()
            x = x + scale * torch.randn(x.shape, generator=gen, device=dev)
        return x.view(n, *self.shape_)
