"""Multi-scale training (``train.detector.multi_scale``): each training batch is resized to a size drawn
around the input size, its boxes with it, and scored against the anchors of that size, so the heads see
each object at several scales (as YOLO's and Ultralytics' ``multi_scale``). Validation, evaluation and
export stay at the input size.

The SSD's feature grids, and so its anchors, depend on the input size; torchvision's SSD fixes both at
one size and Ultralytics' heads are anchor-free, hence this module: the grids of each size are probed
once and its anchors cached.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch.nn import functional as F

from pipeline.detect.anchors import AnchorSpec, make_anchors

if TYPE_CHECKING:
    from pipeline.detect.model import SSD

STEP = 32  # sizes are multiples of the backbones' largest stride, so the backbone levels' grids divide evenly
# (the SSD's extra levels round up when they halve an odd map, so theirs do not scale with the image)


def candidate_sizes(input_size: tuple[int, int], factor: float) -> list[tuple[int, int]]:
    """(width, height) sizes within ``input_size`` x [1 - factor, 1 + factor], widths in multiples of
    STEP, heights keeping the aspect ratio (rounded to STEP); the input size itself among them."""
    if not 0 <= factor < 1:
        raise ValueError(f"train.detector.multi_scale: {factor} must be at least 0 (off) and below 1")
    width, height = input_size
    low, high = math.ceil(width * (1 - factor) / STEP), math.floor(width * (1 + factor) / STEP)
    sizes = {(k * STEP, max(STEP, round(k * height / width) * STEP)) for k in range(max(low, 1), high + 1)}
    return sorted(sizes | {tuple(input_size)})


class TrainingScales:
    """The sizes a training batch may take, and the anchors and per-level anchor counts of each."""

    def __init__(self, net: SSD, spec: AnchorSpec, input_size: tuple[int, int], factor: float):
        self.net, self.spec, self.input_size = net, spec, tuple(input_size)
        self.sizes = candidate_sizes(self.input_size, factor)
        self._anchors: dict[tuple, tuple[torch.Tensor, list[int]]] = {}  # by size and device

    def draw(self) -> tuple[int, int]:
        """A size from the global generator (seeded per step by SeededSteps: the same draws on a resume)."""
        return self.sizes[int(torch.randint(len(self.sizes), ()))]

    def anchors(self, size: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, list[int]]:
        """The anchors (A x 4, pixels of ``size``) and each level's anchor count at ``size``."""
        key = (tuple(size), str(device))
        if key not in self._anchors:
            grids = self.net.grids_at(size)
            anchors = make_anchors(grids, self.spec, size).to(device)
            self._anchors[key] = (anchors, [rows * cols * self.net.per_cell for rows, cols in grids])
        return self._anchors[key]


def rescale(batch: dict, size: tuple[int, int]) -> dict:
    """The batch's images resized to ``size`` (width, height; bilinear, antialiased when shrinking) and
    its boxes with them."""
    images = batch["images"]
    height, width = images.shape[2:]
    if (width, height) == tuple(size):
        return batch
    resized = F.interpolate(images.float(), size=(size[1], size[0]), mode="bilinear", align_corners=False,
                            antialias=size[0] < width)
    factors = torch.tensor([size[0] / width, size[1] / height] * 2, device=images.device)
    boxes = [b.float() * factors for b in batch["boxes"]]  # on the images' device, as Lightning moves batches
    return {**batch, "images": resized, "boxes": boxes}
