"""An autoregressive Transformer over binned values (introduced in Chapter 5).

Each (normalised) value is cut into one of ``bins`` equal bins spanning its
channel's training range, the trajectory is read as a sequence of ``L * d``
tokens (time major, channels within a time step), and a small GPT, written in
the manner of nanoGPT, predicts the next token. Sampling draws tokens one by
one at temperature 1 and returns bin centres, so the model cannot produce a
value outside the training range and its resolution is the bin width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .._validation import check_positive_int
from .base import GenerativeModel


class SelfAttention(nn.Module):
    """Causal multi-head self-attention (Chapter 5)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, w = x.shape
        q, k, v = self.qkv(x).split(w, dim=2)
        q, k, v = (z.view(b, t, self.heads, w // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, w))


class Block(nn.Module):
    """Pre-norm Transformer block: attention then a 4x MLP, each with a residual (Chapter 5)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(),
                                 nn.Linear(4 * width, width))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Next-token model over ``bins`` value tokens plus a start token (Chapter 5).

    ``value_lo``/``value_hi`` (buffers, per channel, saved with the weights) fix the binning.
    The optional control enters as a learned vector added at every position.
    """

    def __init__(self, length: int, channels: int, bins: int, width: int, layers: int, heads: int,
                 conditional: bool):
        super().__init__()
        self.channels, self.bins = channels, bins
        self.start = bins
        self.tok_emb = nn.Embedding(bins + 1, width)
        self.pos_emb = nn.Parameter(torch.zeros(length * channels, width))
        self.cond_emb = nn.Linear(1, width) if conditional else None
        self.blocks = nn.Sequential(*[Block(width, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(width)
        self.head = nn.Linear(width, bins, bias=False)
        self.register_buffer("value_lo", torch.zeros(channels))
        self.register_buffer("value_hi", torch.ones(channels))
        nn.init.normal_(self.pos_emb, std=0.02)

    def tokenise(self, x: torch.Tensor) -> torch.Tensor:
        """Values ``(b, L, d)`` -> tokens ``(b, L * d)``; the top edge goes to the last bin."""
        u = (x - self.value_lo) / (self.value_hi - self.value_lo)
        return (u * self.bins).floor().long().clamp(0, self.bins - 1).flatten(1)

    def detokenise(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens ``(b, L * d)`` -> bin centres ``(b, L, d)``."""
        x = tokens.view(tokens.shape[0], -1, self.channels).float()
        return self.value_lo + (x + 0.5) / self.bins * (self.value_hi - self.value_lo)

    def forward(self, tokens: torch.Tensor, cond: torch.Tensor | None = None,
                last_only: bool = False) -> torch.Tensor:
        """Logits ``(b, T, bins)`` for the token after each of ``tokens``
        ``(b, T)`` (start token first).

        ``last_only`` keeps only the last position (``(b, 1, bins)``), all that sampling needs.
        """
        h = self.tok_emb(tokens) + self.pos_emb[: tokens.shape[1]]
        if self.cond_emb is not None:
            h = h + self.cond_emb(cond[:, None])[:, None, :]
        h = self.blocks(h)
        return self.head(self.ln_f(h[:, -1:] if last_only else h))


@dataclass(eq=False, kw_only=True)
class Transformer(GenerativeModel):
    """Autoregressive GPT over binned trajectory values (Chapter 5).

    Hyper-parameters (besides those of :class:`GenerativeModel`): ``bins`` (value bins per
    channel), ``width`` (embedding size), ``layers``, ``heads`` (must divide ``width``).
    Supports ``inpaint`` (pinned tokens are forced while sampling; pinned values come out exact)
    and conditioning on a scalar ``cond``. No continuous-output head: outputs are bin centres.
    """

    bins: int = 64
    width: int = 48
    layers: int = 2
    heads: int = 4

    name = "Transformer"
    short_name = "GPT"
    relative_cost = 0.9
    supports_inpaint = True
    PROFILE_CONFIGS = {
        "ci": dict(train_steps=500, batch_size=128, lr=3e-3,
                   bins=64, width=48, layers=2, heads=4),
        "cpu": dict(train_steps=1200, batch_size=128, lr=2e-3,
                    bins=128, width=64, layers=3, heads=4),
        "gpu": dict(train_steps=8_000, batch_size=256, lr=3e-4,
                    bins=256, width=256, layers=6, heads=8),
    }

    def __post_init__(self):
        super().__post_init__()
        self.bins = check_positive_int(self.bins, "bins", minimum=2)
        self.width = check_positive_int(self.width, "width")
        self.layers = check_positive_int(self.layers, "layers")
        self.heads = check_positive_int(self.heads, "heads")
        if self.width % self.heads:
            raise ValueError(f"heads must divide width; "
                             f"got width={self.width}, heads={self.heads}")

    def _build(self, length, channels):
        return GPT(length, channels, self.bins, self.width, self.layers, self.heads,
                   self.conditional_)

    def _prepare(self, x):
        lo, hi = x.amin(dim=(0, 1)), x.amax(dim=(0, 1))
        self.net_.value_lo.copy_(lo)
        # A constant channel still needs a bin of non-zero width.
        self.net_.value_hi.copy_(torch.where(hi > lo, hi, lo + 1.0))

    def _inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        start = torch.full((tokens.shape[0], 1), self.net_.start, device=tokens.device,
                           dtype=torch.long)
        return torch.cat([start, tokens[:, :-1]], dim=1)

    def _loss(self, x, cond, gen):
        tokens = self.net_.tokenise(x)
        logits = self.net_(self._inputs(tokens), cond)
        return F.cross_entropy(logits.float().flatten(0, 1), tokens.flatten())

    def _generate(self, n, cond, pin, gen):
        net = self.net_
        dev = net.value_lo.device
        size = self.shape_[0] * self.shape_[1]
        forced = None
        if pin is not None:
            forced = (pin[0].flatten(1), net.tokenise(pin[1]))
        seq = torch.full((n, 1), net.start, device=dev, dtype=torch.long)
        # No key-value cache: L * d is small in this book, and the full pass reads more simply.
        for k in range(size):
            probs = F.softmax(net(seq, cond, last_only=True)[:, -1].float(), dim=-1)
            nxt = torch.multinomial(probs, 1, generator=gen)[:, 0]
            if forced is not None:
                nxt = torch.where(forced[0][:, k], forced[1][:, k], nxt)
            seq = torch.cat([seq, nxt[:, None]], dim=1)
        return net.detokenise(seq[:, 1:])
