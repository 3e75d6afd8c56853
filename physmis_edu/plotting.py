"""Small, generic plots of recovered distributions (introduced in Chapter 1).

matplotlib is imported inside each function so that ``import physmis_edu`` stays fast.
Dependencies run one way: this module draws what :mod:`physmis_edu.metrics` computes, and
``metrics`` never imports it at module level (``DriftReport.plot`` calls :func:`plot_drift`).
Overflow bins are drawn, hatched, one bin-width outside ``[lo, hi]``: mass the model puts
outside the prior's support is part of the drift and must be visible.
"""

from __future__ import annotations

import numpy as np

from .metrics import DriftReport, as_prior, null_band, prior_probs, recovered_histogram

__all__ = ["plot_drift", "plot_values", "plot_leaderboard", "plot_leaderboard_groups",
           "frame_player", "grid_player"]


def _bin_positions(edges: np.ndarray) -> tuple[np.ndarray, float]:
    """Centres of ``[underflow, bins..., overflow]`` with the overflow bins one width outside."""
    width = float(edges[1] - edges[0])
    centres = 0.5 * (edges[1:] + edges[:-1])
    return np.concatenate([[edges[0] - width], centres, [edges[-1] + width]]), width


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 3.2), constrained_layout=True)
    return ax


def _draw_support(ax, edges, x, width, prior_probs, band=None):
    steps = np.concatenate([[x[0] - width / 2], x + width / 2])
    if band is not None:
        ax.fill_between(steps, np.append(band[0], band[0][-1]), np.append(band[1], band[1][-1]),
                        step="post", color="0.6", alpha=0.35, lw=0,
                        label="null band (99%, same n)")
    ax.stairs(prior_probs, steps, color="k", lw=1.5, label="prior p")
    for edge in (edges[0], edges[-1]):
        ax.axvline(edge, color="0.3", lw=0.8, ls=":")


def plot_drift(report, ax=None, title: str | None = None):
    """Plot a :class:`~physmis_edu.metrics.DriftReport`: recovered bars, prior,
    null band, prediction (Chapter 1).
    """
    if not isinstance(report, DriftReport):
        raise ValueError("report must be a DriftReport (from metrics.drift_report); "
                         f"got {type(report).__name__}")
    ax = _axes(ax)
    hist = report.histogram
    x, width = _bin_positions(hist.edges)
    _draw_support(ax, hist.edges, x, width, report.prior_probs, report.null_band)
    bars = ax.bar(x, hist.probs, width=0.85 * width, color="C0", alpha=0.75,
                  label=f"recovered q (n={report.n})")
    for outer in (bars[0], bars[-1]):
        outer.set_hatch("//")
    if report.predicted is not None:
        steps = np.concatenate([[x[0] - width / 2], x + width / 2])
        ax.stairs(report.predicted.probs, steps, color="C3", lw=1.8,
                  label="predicted q_hat (kernel)")
    ax.set_xlabel("recovered control (hatched: outside [lo, hi])")
    ax.set_ylabel("probability per bin")
    verdict = "drift" if report.significant else "within null"
    ax.set_title(title or f"TV {report.tv:.3f} vs null99 {report.null_tv99:.3f} ({verdict}); "
                          f"failed {report.n_failed}",
                 fontsize=10)
    ax.legend(fontsize=9, frameon=False)
    return ax


def plot_values(values_by_label, prior, bins: int = 20, ax=None, null: bool = True, rng=None):
    """Step histograms of several sets of recovered values over a prior and
    its null band (Chapter 1).

    ``values_by_label`` maps a legend label to recovered values (``NaN`` = failure, counted in the
    label); a single array is labelled ``'data'``.
    ``prior`` may be a Task, whose control name and units then label the x axis.
    The null band is for the smallest finite sample among the sets, the widest band that applies.
    """
    if not isinstance(values_by_label, dict):
        values_by_label = {"data": values_by_label}
    name = getattr(prior, "control_name", "control")
    units = getattr(prior, "units", "")
    xlabel = f"recovered {name}" + (f" [{units}]" if units else "")
    if not values_by_label:
        raise ValueError("values_by_label is empty; give at least one set of recovered values")
    prior = as_prior(prior)
    ax = _axes(ax)
    hists = {label: recovered_histogram(v, prior.lo, prior.hi, bins)
             for label, v in values_by_label.items()}
    edges = next(iter(hists.values())).edges
    x, width = _bin_positions(edges)
    n_min = min(h.n_finite for h in hists.values())
    band = null_band(prior, n_min, bins, rng=rng) if null and n_min > 0 else None
    _draw_support(ax, edges, x, width, prior_probs(prior, bins), band)
    steps = np.concatenate([[x[0] - width / 2], x + width / 2])
    for i, (label, h) in enumerate(hists.items()):
        ax.stairs(h.probs, steps, color=f"C{i}", lw=1.6,
                  label=f"{label} (n={h.n_total}, failed {h.n_failed})")
    ax.set_xlabel(f"{xlabel} (outer bins: outside [lo, hi])")
    ax.set_ylabel("probability per bin")
    ax.legend(fontsize=9, frameon=False)
    return ax


# Colours of leaderboard rows by how the kernel was obtained (Chapter 6).
_ROW_COLOURS = {"reference": "0.55", "routed": "C4", "kernel": "C0", "before training": "C2",
                "cheap proxy": "C1"}


def _row_kind(row: dict) -> str:
    if row.get("before_training"):
        return "before training"
    if row.get("cost_fraction") is not None:
        return "cheap proxy"
    return row["kind"]


def _finite(v) -> float:
    return float(v) if v is not None and np.isfinite(v) else np.nan


def plot_leaderboard(board: list[dict], goals=(("inside_pearson", 0.8), ("ef", 0.5)),
                     reference: str | None = None, width: float = 8.0):
    """Bars of a leaderboard's medians with their intervals, coloured by how each kernel was
    obtained (Chapter 6). ``board``: rows of :func:`physmis_edu.panel.leaderboard`; ``goals``:
    (column, goal) pairs, one panel each; ``reference``: the name of a row drawn as a dotted
    line (e.g. the seed-to-seed ceiling). Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    y = np.arange(len(board))
    fig, axes = plt.subplots(1, len(goals), figsize=(width, 0.24 * len(board) + 1.6),
                             sharey=True, layout="constrained", squeeze=False)
    ref = next((r for r in board if r["kernel"] == reference), None)
    labels = {"inside_pearson": "median Pearson inside [lo, hi]", "pearson": "median Pearson",
              "ef": "median explained fraction"}
    for ax, (key, goal) in zip(axes[0], goals):
        mid = np.array([_finite(r.get(key)) for r in board])
        ci = np.array([r.get(f"{key}_ci") or [np.nan, np.nan] for r in board], dtype=float)
        err = np.abs(np.stack([mid - ci[:, 0], ci[:, 1] - mid]))
        ax.barh(y, np.nan_to_num(mid), color=[_ROW_COLOURS[_row_kind(r)] for r in board])
        ax.errorbar(mid, y, xerr=np.nan_to_num(err), fmt="none", ecolor="k", lw=0.8)
        ax.axvline(goal, color="k", ls="--", lw=1)
        if ref is not None:
            ax.axvline(_finite(ref.get(key)), color="0.3", ls=":", lw=1.4)
        ax.axvline(0, color="k", lw=0.6)
        ax.set_xlabel(labels.get(key, key), fontsize=9)
    axes[0, 0].set_yticks(y, [r["kernel"][:34] for r in board], fontsize=8)
    axes[0, 0].invert_yaxis()
    kinds = dict.fromkeys(_row_kind(r) for r in board)
    handles = [Patch(color=_ROW_COLOURS[k], label=k) for k in kinds]
    handles += [plt.Line2D([], [], color="k", ls="--", label="goal")]
    if ref is not None:
        handles += [plt.Line2D([], [], color="0.3", ls=":", label=reference)]
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=9)
    return fig


def plot_leaderboard_groups(board: list[dict], shorts: dict | None = None,
                            key: str = "inside_pearson", width: float = 8.0):
    """A heat map of each row's median ``key`` per model class (left of the line) and per task
    (right of it) (Chapter 6). ``shorts``: short names of the model classes. Returns the
    figure."""
    import matplotlib.pyplot as plt

    models = list(board[0]["per_model"])
    tasks = list(board[0]["per_task"])
    groups = [("per_model", m) for m in models] + [("per_task", t) for t in tasks]
    table = np.array([[_finite(r[kind].get(name, {}).get(key)) for kind, name in groups]
                      for r in board])
    fig, ax = plt.subplots(figsize=(width, 0.24 * len(board) + 1.8), layout="constrained")
    image = ax.imshow(table, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    for i, j in np.ndindex(table.shape):
        text = "-" if not np.isfinite(table[i, j]) else f"{table[i, j]:.2f}"
        ax.text(j, i, text, ha="center", va="center", fontsize=7)
    ax.axvline(len(models) - 0.5, color="k", lw=1.5)
    names = [(shorts or {}).get(name, name) for _, name in groups]
    ax.set_xticks(range(len(groups)), names, rotation=30, ha="right", fontsize=9)
    ax.set_yticks(range(len(board)), [r["kernel"][:34] for r in board], fontsize=8)
    fig.colorbar(image, ax=ax, label=key.replace("_", " "), shrink=0.8)
    return fig



def frame_player(draw, keys, figsize=(8.0, 3.6), dpi: int = 72, interval: int = 900):
    """An explorer that works on a static page: one precomputed frame per key (Chapter 7).

    ``draw(fig, key)`` draws the frame of ``key`` on a cleared figure; ``keys`` are the frames in
    order. The frames are rendered once and played, paused and scrubbed with a slider by
    matplotlib's JavaScript player (``Animation.to_jshtml``), so the explorer needs no running
    kernel and no widget manager: it works alike on the rendered book, in Jupyter and in Colab.
    Each frame costs roughly ``figsize * dpi`` worth of PNG in the page, so keep them few.
    Returns an ``IPython.display.HTML`` object (display it, or make it a cell's last value).
    """
    import matplotlib.pyplot as plt
    from IPython.display import HTML
    from matplotlib import animation

    keys = list(keys)
    if not keys:
        raise ValueError("keys must hold at least one frame; got none")
    if not callable(draw):
        raise ValueError(f"draw must be a function draw(fig, key); got {type(draw).__name__}")
    if not (isinstance(interval, int) and interval > 0):
        raise ValueError(f"interval must be a positive number of milliseconds; got {interval!r}")
    # Constrained layout keeps axis labels inside a frame that draw() fills edge to edge.
    fig = plt.figure(figsize=figsize, dpi=dpi, layout="constrained")

    def update(i):
        fig.clear()
        draw(fig, keys[i])
        return []

    try:
        player = animation.FuncAnimation(fig, update, frames=len(keys), interval=interval,
                                         blit=False, repeat=False)
        html = player.to_jshtml(default_mode="once")
    finally:
        plt.close(fig)
    return HTML(html)


def grid_player(draw, grid: dict, figsize=(8.0, 3.6), dpi: int = 72, interval: int = 1200):
    """An explorer over a grid of parameters that works on a static page (Chapter 1).

    ``draw(fig, **params)`` draws one setting of the parameters on a cleared figure; ``grid``
    maps each parameter's name to the values to show, e.g. ``{"n": [250, 8000],
    "bins": [10, 20]}``. Every combination becomes one frame of :func:`frame_player`, the
    last parameter varying fastest, and each frame is titled with its setting, so one
    slider steps through the whole grid. Frames are rendered once, so the grid should stay
    small (a dozen or two frames).
    Returns an ``IPython.display.HTML`` object.
    """
    import itertools

    if not isinstance(grid, dict) or not grid:
        raise ValueError("grid must be a non-empty dict of parameter name -> values; "
                         f"got {grid!r}")
    names = list(grid)
    values = []
    for name in names:
        options = list(grid[name]) if not isinstance(grid[name], str) else []
        if not options:
            raise ValueError(f"grid[{name!r}] must be a non-empty list of values; "
                             f"got {grid[name]!r}")
        values.append(options)
    settings = [dict(zip(names, combo)) for combo in itertools.product(*values)]

    def draw_setting(fig, setting):
        draw(fig, **setting)
        label = ", ".join(f"{name} = {_short(value)}" for name, value in setting.items())
        fig.suptitle(label, fontsize=10, x=0.01, ha="left")

    return frame_player(draw_setting, settings, figsize=figsize, dpi=dpi, interval=interval)


def _short(value) -> str:
    """A parameter value as a frame title shows it: floats to 3 significant digits."""
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_short(v) for v in value) + ")"
    return str(value)
