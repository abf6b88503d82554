"""Decoded images kept in memory between epochs.

Decoding is most of a training sample's cost on the built-in data: a 160 px image takes about
twice as long to decode as to augment, and the patch view cuts three or four patches from each
image, each of which decoded the whole image again. A training's loader keeps each image's pixels
once decoded, up to ``train.<model>.image_cache_mb`` for all its processes together (each loader
process holds its own share); past the budget images are decoded every time. The pixels are the
ones :func:`pipeline.io.images.read_image` returns, so results do not change.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.io.images import read_image

MB = 2**20


class DecodedImages:
    """``pixels(path)``: the file's RGB pixels, decoded once while the budget lasts."""

    def __init__(self, budget_mb: float, processes: int = 1):
        """``budget_mb`` for ``processes`` loader processes (each copy keeps its own share)."""
        self.budget = int(budget_mb * MB) // max(1, processes)
        self.used = 0
        self.images: dict[str, np.ndarray] = {}

    def pixels(self, path: str | Path) -> np.ndarray:
        key = str(path)
        kept = self.images.get(key)
        if kept is not None:
            return kept
        pixels = read_image(path).pixels
        if self.used + pixels.nbytes <= self.budget:
            pixels.setflags(write=False)  # shared by every later epoch: no consumer may change it
            self.images[key] = pixels
            self.used += pixels.nbytes
        return pixels
