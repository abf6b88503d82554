"""The patch view of a detection dataset: object crops and background crops for a classifier.

The whale-face workflow trains a patch classifier first; here the patches are cut from
any detection manifest: one square crop around each box (its class), plus background crops that
overlap no box (class ``background``, the last id). The same classifier then runs over windows
or, made fully convolutional, over whole images (heatmaps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BACKGROUND = "background"


@dataclass(frozen=True)
class Patch:
    sample: int  # index of the sample in the list the patches were cut from
    box: tuple[float, float, float, float]  # square crop window, xyxy pixels (may pass the border)
    label: int


def square_around(box, context: float) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * (1.0 + context)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def overlap_fraction(window, boxes: np.ndarray) -> float:
    """Largest fraction of any box's area that lies inside ``window``."""
    if len(boxes) == 0:
        return 0.0
    ix = np.clip(np.minimum(window[2], boxes[:, 2]) - np.maximum(window[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(window[3], boxes[:, 3]) - np.maximum(window[1], boxes[:, 1]), 0, None)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return float((ix * iy / np.maximum(areas, 1e-9)).max())


def fragment_window(box, boxes: np.ndarray, context: float, rng, max_visible: float = 0.4,
                    max_overlap: float = 0.1, tries: int = 20):
    """A window of the object's patch size that holds only a fragment of it (and little of others).

    Labelled background, such windows teach a patch classifier that an off-centre fragment is not
    the object, so that heatmaps peak on object centres (hard negatives of sliding-window detectors).
    """
    x1, y1, x2, y2 = square_around(box, context)
    side = x2 - x1
    others = boxes[~np.all(boxes == np.asarray(box), axis=1)]
    for _ in range(tries):
        angle = rng.uniform(0, 2 * np.pi)
        shift = rng.uniform(0.55, 0.9) * side
        window = (x1 + shift * np.cos(angle), y1 + shift * np.sin(angle),
                  x2 + shift * np.cos(angle), y2 + shift * np.sin(angle))
        visible = overlap_fraction(window, np.asarray([box], np.float64))
        if 0.05 <= visible <= max_visible and overlap_fraction(window, others) <= max_overlap:
            return window
    return None


def patch_windows(samples, num_classes: int, context: float = 0.25, background_per_image: int = 1,
                  max_background_overlap: float = 0.1, seed: int = 0, fragments_per_object: int = 0) -> list[Patch]:
    """Object crops (one per box), background crops (sizes drawn from the object sizes) and,
    optionally, off-centre fragments of objects labelled background."""
    patches: list[Patch] = []
    sides = [max(b[2] - b[0], b[3] - b[1]) * (1 + context) for s in samples for b in s.boxes] or [32.0]
    for index, sample in enumerate(samples):
        boxes = np.asarray(sample.boxes, np.float64).reshape(-1, 4)
        rng = np.random.default_rng([seed, index, 1])
        for box, label in zip(boxes, sample.box_labels):
            patches.append(Patch(index, square_around(box, context), int(label)))
            for _ in range(fragments_per_object):
                window = fragment_window(box, boxes, context, rng)
                if window is not None:
                    patches.append(Patch(index, window, num_classes))
        rng = np.random.default_rng([seed, index])
        found, tries = 0, 0
        while found < background_per_image and tries < 50:
            tries += 1
            side = min(float(rng.choice(sides)), sample.width, sample.height)
            x1 = float(rng.uniform(0, sample.width - side))
            y1 = float(rng.uniform(0, sample.height - side))
            window = (x1, y1, x1 + side, y1 + side)
            if overlap_fraction(window, boxes) <= max_background_overlap:
                patches.append(Patch(index, window, num_classes))
                found += 1
    return patches


def crop(image: np.ndarray, window, fill: int = 114) -> np.ndarray:
    """Pixels of ``window`` (xyxy, may pass the border: padded with ``fill``)."""
    x1, y1, x2, y2 = (int(round(v)) for v in window)
    h, w = image.shape[:2]
    out = np.full((max(1, y2 - y1), max(1, x2 - x1), 3), fill, np.uint8)
    sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if sx2 > sx1 and sy2 > sy1:
        out[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = image[sy1:sy2, sx1:sx2]
    return out
