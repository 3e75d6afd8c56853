"""Draw the introduction's overview figure, ``book/figures/overview.svg``.

    python tools/make_overview.py

The figure is a diagram, not a result: the pipeline from an intended prior p(c) through
curated trajectories, a generative model and the recovery M to the recovered distribution q,
with the kernel's prediction q_hat beside it and the chapters that treat each step.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "book" / "figures" / "overview.svg"

W, H = 0.22, 0.2  # box size in axes units

BOXES = {  # name: (x, y, text, chapters, colour)
    "prior": (0.11, 0.74, "intended prior\n$p(c)$", "Ch. 1-4", "#dbe9f6"),
    "data": (0.37, 0.74, "curated data\n$x = G(c, z)$", "Ch. 4, 7, 8", "#dbe9f6"),
    "model": (0.63, 0.74, "generative model\n$p_\\theta$, never sees $c$", "Ch. 5",
              "#fde2c8"),
    "samples": (0.89, 0.74, "samples that\nlook right", "Ch. 5, 7, 8", "#fde2c8"),
    "fix": (0.11, 0.30, "mitigations:\nreweight, condition,\nrecoordinate", "Ch. 9, 10",
            "#ece2f4"),
    "kernel": (0.50, 0.30, "deviation kernel $K$\n$\\hat q = M_\\#(K \\circ p_{data})$",
               "Ch. 2, 6, 11", "#dff0d8"),
    "recovered": (0.89, 0.30, "recovered\n$q = M_\\# p_\\theta \\neq p$", "Ch. 1-3",
                  "#f6d5d5"),
}


def _box(ax, x, y, text, chapters, colour):
    ax.add_patch(FancyBboxPatch((x - W / 2, y - H / 2), W, H,
                                boxstyle="round,pad=0.01", fc=colour, ec="0.3", lw=1))
    ax.text(x, y + 0.02, text, ha="center", va="center", fontsize=9.5)
    ax.text(x, y - 0.07, chapters, ha="center", va="center", fontsize=9,
            color="0.35", style="italic")


def _arrow(ax, a, b, label="", dashed=False, dy=0.04, dx=0.0):
    (xa, ya), (xb, yb) = a, b
    ax.add_patch(FancyArrowPatch((xa, ya), (xb, yb), arrowstyle="-|>", mutation_scale=12,
                                 lw=1.2, color="0.25", ls="--" if dashed else "-"))
    if label:
        ax.text((xa + xb) / 2 + dx, (ya + yb) / 2 + dy, label,
                ha="left" if dx else "center", fontsize=9,
                color="0.25")


def draw() -> plt.Figure:
    fig, ax = plt.subplots(figsize=(8, 3.4))
    ax.set(xlim=(-0.03, 1.03), ylim=(0.1, 0.9))
    ax.axis("off")
    for x, y, text, chapters, colour in BOXES.values():
        _box(ax, x, y, text, chapters, colour)
    top = 0.74
    for left, right in [(0.11, 0.37), (0.37, 0.63), (0.63, 0.89)]:
        _arrow(ax, (left + W / 2 + 0.005, top), (right - W / 2 - 0.005, top))
    _arrow(ax, (0.89, top - H / 2 - 0.01), (0.89, 0.30 + H / 2 + 0.01), "recover $M$",
           dy=0.0, dx=0.015)
    _arrow(ax, (0.37, top - H / 2 - 0.01), (0.45, 0.30 + H / 2 + 0.01), "perturb",
           dashed=True, dy=0.0, dx=0.03)
    _arrow(ax, (0.50 + W / 2 + 0.005, 0.30), (0.89 - W / 2 - 0.005, 0.30), "predicts",
           dashed=True)
    _arrow(ax, (0.50 - W / 2 - 0.005, 0.30), (0.11 + W / 2 + 0.005, 0.30), "guides",
           dashed=True)
    ax.text(0.5, 0.12, "each sample looks right; the distribution of $c$ recovered "
            "from many samples does not", ha="center", fontsize=9.5, style="italic")
    return fig


def main() -> None:
    fig = draw()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=OUT.parent, suffix=".svg")
    os.close(fd)
    fig.savefig(tmp, format="svg", bbox_inches="tight", metadata={"Date": None})
    os.replace(tmp, OUT)
    print(f"wrote {OUT.relative_to(OUT.parents[2])}")


if __name__ == "__main__":
    main()
