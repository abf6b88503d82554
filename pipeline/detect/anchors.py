"""SSD anchors: for every cell of every feature level, one box per zoom x aspect ratio.

A level is a grid (rows x cols) over the input image and an anchor size (the side at zoom 1 and
ratio 1, as a fraction of the image's side). Anchors are ordered level, row, col, zoom, ratio,
which is the order of a head's outputs reshaped from B x (n*k) x H x W to B x (H*W*n) x k.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from pipeline.detect.settings import Anchors


@dataclass(frozen=True)
class AnchorSpec:
    """Zooms and aspect ratios (width / height) shared by all levels; sizes per level."""

    zooms: tuple[float, ...]
    ratios: tuple[float, ...]
    sizes: tuple[float, ...] | None = None  # per level; None: the level's cell (1 / grid), as fast.ai

    @property
    def per_cell(self) -> int:
        return len(self.zooms) * len(self.ratios)

    def level_sizes(self, grids: Sequence[tuple[int, int]]) -> list[tuple[float, float]]:
        """(width, height) fraction of the image at zoom 1, ratio 1, for each level."""
        if self.sizes is None:
            return [(1 / cols, 1 / rows) for rows, cols in grids]
        if len(self.sizes) != len(grids):
            raise ValueError(f"anchors: {len(self.sizes)} sizes for {len(grids)} feature levels {list(grids)}")
        return [(s, s) for s in self.sizes]


def linear_sizes(levels: int, smallest: float, largest: float) -> tuple[float, ...]:
    """The SSD paper's scales: evenly spaced from ``smallest`` to ``largest`` over the levels."""
    if levels == 1:
        return (smallest,)
    return tuple(smallest + (largest - smallest) * k / (levels - 1) for k in range(levels))


def geometric_sizes(levels: int, smallest: float, largest: float) -> tuple[float, ...]:
    """Sizes with a constant ratio between neighbouring levels (as RetinaNet's per-octave scales):
    with zooms at the square root of that ratio, every object size is near an anchor's."""
    if levels == 1:
        return (smallest,)
    return tuple(smallest * (largest / smallest) ** (k / (levels - 1)) for k in range(levels))


SPACINGS = {"linear": linear_sizes, "geometric": geometric_sizes}


def level_anchors(grid: tuple[int, int], size: tuple[float, float], spec: AnchorSpec,
                  image_size: tuple[int, int]) -> torch.Tensor:
    """rows * cols * per_cell x 4 anchors (xyxy, input pixels) of one level."""
    rows, cols = grid
    width, height = image_size
    cy, cx = torch.meshgrid((torch.arange(rows, dtype=torch.float64) + 0.5) * height / rows,
                            (torch.arange(cols, dtype=torch.float64) + 0.5) * width / cols, indexing="ij")
    shapes = torch.tensor([(size[0] * width * z * math.sqrt(r), size[1] * height * z / math.sqrt(r))
                           for z in spec.zooms for r in spec.ratios], dtype=torch.float64)  # n x (w, h)
    centres = torch.stack([cx, cy], dim=-1).reshape(-1, 1, 2)
    half = shapes[None] / 2
    return torch.cat([centres - half, centres + half], dim=-1).reshape(-1, 4).float()


def make_anchors(grids: Sequence[tuple[int, int]], spec: AnchorSpec, image_size: tuple[int, int]) -> torch.Tensor:
    """All levels' anchors, A x 4 (xyxy, input pixels), finest level first."""
    sizes = spec.level_sizes(grids)
    return torch.cat([level_anchors(tuple(g), s, spec, image_size) for g, s in zip(grids, sizes)])


def spec_from_config(anchors: Anchors, levels: int) -> AnchorSpec:
    """`model.detector.anchors`: zooms, ratios and sizes (``cell``, a list, or ``{smallest, largest,
    spacing}`` with spacing ``linear`` (the SSD paper's, when not given) or ``geometric``)."""
    sizes = anchors.sizes  # any of three shapes: typed Any in the schema, read here
    if sizes == "cell":
        chosen = None
    elif isinstance(sizes, Mapping) and "smallest" in sizes:
        spacing = str(sizes.get("spacing", "linear"))
        if spacing not in SPACINGS:
            raise ValueError(f"model.detector.anchors.sizes.spacing: {spacing!r} is not one of {sorted(SPACINGS)}")
        chosen = SPACINGS[spacing](levels, float(sizes["smallest"]), float(sizes["largest"]))
    else:
        chosen = tuple(float(s) for s in sizes)
    return AnchorSpec(tuple(anchors.zooms), tuple(anchors.ratios), chosen)
