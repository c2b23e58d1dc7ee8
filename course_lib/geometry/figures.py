"""The chapter's figures, one panel per model: the paper's Figures 1, 3, 4 and 6 (matplotlib)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .lipschitz import LipschitzResult
from .scores import ScoreSpread
from .topology import TopologyResult

# float32 cannot tell apart scores closer than this near 1, so a smaller range
# (zero included) is drawn at this floor of the log axis.
RANGE_FLOOR = 1e-7


def _panels(count: int, width: float = 4.2, height: float = 3.4, sharey: bool = True):
    fig, axes = plt.subplots(1, count, figsize=(width * count, height), squeeze=False,
                             sharey=sharey, layout="constrained")
    return fig, axes[0]


def plot_score_spread(results: dict[str, ScoreSpread]):
    """range(r) per sample (log scale), coloured by the mean score, squares where a copy was misclassified."""
    fig, axes = _panels(len(results))
    for ax, (name, result) in zip(axes, results.items()):
        n, r = result.range.shape
        radii = np.broadcast_to(result.radii.numpy(), (n, r))
        spread = np.clip(result.range.numpy(), RANGE_FLOOR, None)
        wrong = result.misclassified.numpy()
        for mask, marker in ((~wrong, "o"), (wrong, "s")):
            points = ax.scatter(radii[mask], spread[mask], c=result.mean.numpy()[mask], cmap="viridis",
                                vmin=0, vmax=1, marker=marker, s=22, edgecolors="k", linewidths=0.3)
        ax.set(xscale="log", yscale="log", xlabel="radius r (L2, pixels in [0, 1])", title=name)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"range of the true-class score ({results[name].kind})")
    fig.colorbar(points, ax=list(axes), label="mean true-class score")
    return fig


def plot_topology(results: dict[str, TopologyResult]):
    """Mantel rho against the radius for each layer: one dot per sample, the line is the mean."""
    fig, axes = _panels(len(results))
    for ax, (name, result) in zip(axes, results.items()):
        radii = result.radii.numpy()
        for k, layer in enumerate(result.layers):
            rho = result.rho[:, :, k]
            line, = ax.plot(radii, rho.mean(axis=0), marker="o", label=layer)
            ax.scatter(np.broadcast_to(radii, rho.shape), rho, s=8, alpha=0.4, color=line.get_color())
        ax.set(xscale="log", xlabel="radius r (L2)", title=name, ylim=(-0.2, 1.05))
        ax.axhline(0, color="k", lw=0.6)
        ax.grid(alpha=0.3)
        ax.legend(title="layer", fontsize=8)
    axes[0].set_ylabel("Mantel rho (input vs layer distances)")
    return fig


def plot_lipschitz(results: dict[str, LipschitzResult]):
    """Normalised output against input distance, coloured by radius, with linear and quadratic fits.

    Each panel's height fits its own points (the ratio-1 line leaves the panel
    when every ratio is far below 1).
    """
    fig, axes = _panels(len(results), sharey=False)
    for ax, (name, result) in zip(axes, results.items()):
        radius = np.broadcast_to(result.radii.numpy()[None, :, None], result.input_distance.shape)
        points = ax.scatter(result.input_distance.ravel(), result.output_distance.ravel(), c=radius.ravel(),
                            cmap="cool", s=6, norm="log")
        grid = np.linspace(0, result.input_distance.max(), 100)
        ax.plot(grid, np.polyval(result.fit(1), grid), color="k", label="linear fit")
        ax.plot(grid, np.polyval(result.fit(2), grid), color="tab:blue", label="quadratic fit")
        ax.plot(grid, grid, "k--", lw=0.8, label="ratio 1")
        ax.set_ylim(0, 1.1 * max(result.output_distance.max(), 1e-12))
        ax.set(xlabel="||h(x+v) - h(x)||", title=f"{name} ({result.layer}): "
               f"{100 * result.share_below_one:.0f}% below 1")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("||g(layer(x+v)) - g(layer(x))||")
    fig.colorbar(points, ax=list(axes), label="radius r")
    return fig
