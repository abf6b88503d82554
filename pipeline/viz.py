"""Pictures people look at: image grids with boxes, shared by every stage."""

from __future__ import annotations

import csv
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


def save_confusion(actual, predicted, names: list[str], png: Path, csv_path: Path, title: str = "") -> np.ndarray:
    """Class indices into ``names``: one CSV row (actual, predicted) per pair, for DVC's confusion
    template, and a PNG of the counts (rows actual, columns predicted). Returns the matrix."""
    # imported here: scikit-learn takes about 1.3 s to import, which `prepare` and `augment` never need
    from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

    matrix = confusion_matrix(actual, predicted, labels=list(range(len(names))))
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["actual", "predicted"])
        writer.writerows([names[a], names[p]] for a, p in zip(actual, predicted))
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(names), 1 + 0.8 * len(names)))
    ConfusionMatrixDisplay(matrix, display_labels=names).plot(ax=ax, colorbar=False, xticks_rotation=45)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return matrix
