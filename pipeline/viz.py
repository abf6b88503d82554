"""Pictures people look at: image grids with boxes, shared by every stage."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import patches  # noqa: E402


@dataclass
class Panel:
    pixels: np.ndarray
    boxes: list = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    title: str = ""


def class_color(index: int):
    return plt.get_cmap("tab10")(index % 10)


def draw_panel(ax, panel: Panel, colors: dict[str, tuple]) -> None:
    ax.imshow(panel.pixels)
    for box, label in zip(panel.boxes, panel.labels):
        x1, y1, x2, y2 = box
        color = colors.setdefault(label, class_color(len(colors)))
        ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=1.5))
        ax.text(x1, y1, label, color="white", fontsize=6, va="bottom",
                bbox={"facecolor": color, "alpha": 0.8, "pad": 0.5, "edgecolor": "none"})
    ax.set_title(panel.title, fontsize=7)
    ax.axis("off")


def save_grid(panels: list[Panel], path: str | Path, ncols: int = 4, title: str = "") -> None:
    """Save ``panels`` as one PNG grid; each box drawn in its class colour with its label."""
    ncols = max(1, min(ncols, len(panels)))
    nrows = max(1, math.ceil(len(panels) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.6 * nrows), squeeze=False)
    colors: dict[str, tuple] = {}
    for ax in axes.flat:
        ax.axis("off")
    for ax, panel in zip(axes.flat, panels):
        draw_panel(ax, panel, colors)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
