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
from PIL import Image, ImageDraw, ImageFont  # noqa: E402


@dataclass
class Panel:
    pixels: np.ndarray
    boxes: list = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    title: str = ""


CELL = 286          # pixels per panel (the images fit inside, aspect ratio kept)
CAPTION_LINE = 13   # pixels per line of a panel's title
HEADING = 22        # pixels above the grid for its title


def class_color(index: int) -> tuple[int, int, int]:
    r, g, b, _ = plt.get_cmap("tab10")(index % 10)
    return round(255 * r), round(255 * g), round(255 * b)


def rgb_image(pixels: np.ndarray) -> Image.Image:
    """An RGB picture of ``pixels``: uint8 or float in [0, 1] (clipped, as matplotlib shows them),
    H x W (grey), H x W x 3 or H x W x 4."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        pixels = (np.clip(pixels.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    return Image.fromarray(pixels).convert("RGB")


def font(size: int):
    return ImageFont.load_default(size=size)


def fitted(image: Image.Image) -> tuple[float, tuple[int, int]]:
    """The scale and size of ``image`` shown in a cell, margins left."""
    scale = min((CELL - 6) / image.width, (CELL - 6) / image.height)
    return scale, (max(1, round(image.width * scale)), max(1, round(image.height * scale)))


def draw_panel(pen: ImageDraw.ImageDraw, sheet: Image.Image, panel: Panel, image: Image.Image,
               corner: tuple[int, int], caption: int, height: int, colors: dict[str, tuple]) -> None:
    """``panel`` (its picture ``image``) in the cell at ``corner``: its title (``caption`` pixels)
    above its image (``height`` pixels), the boxes in their class colour with their label."""
    x0, y0 = corner
    for k, line in enumerate(panel.title.split("\n") if panel.title else []):
        pen.text((x0 + CELL // 2, y0 + 1 + CAPTION_LINE * k), line, fill=(0, 0, 0), font=font(10), anchor="ma")
    scale, size = fitted(image)
    left, top = x0 + (CELL - size[0]) // 2, y0 + caption + (height - size[1]) // 2
    sheet.paste(image.resize(size, Image.Resampling.BILINEAR), (left, top))
    for box, label in zip(panel.boxes, panel.labels):
        x1, y1, x2, y2 = (float(v) * scale for v in box)
        color = colors.setdefault(label, class_color(len(colors)))
        pen.rectangle([left + x1, top + y1, left + x2, top + y2], outline=color, width=2)
        at, anchor = (left + x1, top + y1), "lb"  # above the box, or inside it at the image's top
        if pen.textbbox(at, label, font=font(9), anchor=anchor)[1] < top:
            anchor = "lt"
        pen.rectangle(pen.textbbox(at, label, font=font(9), anchor=anchor), fill=color)
        pen.text(at, label, fill=(255, 255, 255), font=font(9), anchor=anchor)


def save_grid(panels: list[Panel], path: str | Path, ncols: int = 4, title: str = "") -> None:
    """Save ``panels`` as one PNG grid; each box drawn in its class colour with its label.

    Drawn with Pillow: a grid of 16 images took about 0.75 s with matplotlib (its figure layout and
    rendering), and every stage draws several."""
    ncols = max(1, min(ncols, len(panels)))
    nrows = max(1, math.ceil(len(panels) / ncols))
    caption = CAPTION_LINE * max([p.title.count("\n") + 1 for p in panels if p.title], default=0) + 2
    heading = HEADING if title else 0
    images = [rgb_image(panel.pixels) for panel in panels]
    height = max((fitted(image)[1][1] for image in images), default=CELL - 6) + 6  # wide images: shorter rows
    sheet = Image.new("RGB", (ncols * CELL, heading + nrows * (caption + height)), (255, 255, 255))
    pen = ImageDraw.Draw(sheet)
    if title:
        pen.text((sheet.width // 2, 4), title, fill=(0, 0, 0), font=font(13), anchor="ma")
    colors: dict[str, tuple] = {}
    for i, (panel, image) in enumerate(zip(panels, images)):
        corner = ((i % ncols) * CELL, heading + (i // ncols) * (caption + height))
        draw_panel(pen, sheet, panel, image, corner, caption, height, colors)
    sheet.save(path, format="PNG", compress_level=3)  # a third of level 6's time for 8 % more bytes


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
