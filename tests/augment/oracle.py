"""The mask oracle: each box is also drawn as a filled mask and pushed through the same call."""

from __future__ import annotations

from dataclasses import dataclass

import albumentations as A
import numpy as np


@dataclass
class Case:
    image: np.ndarray
    boxes: np.ndarray  # k x 4 integer-valued xyxy
    masks: list[np.ndarray]  # one filled rectangle per box


def random_case(rng: np.random.Generator, max_boxes: int = 5, size=(64, 256)) -> Case:
    width, height = (int(v) for v in rng.integers(size[0], size[1] + 1, 2))
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    boxes = []
    for _ in range(int(rng.integers(0, max_boxes + 1))):
        w = int(rng.integers(6, max(7, width // 2)))
        h = int(rng.integers(6, max(7, height // 2)))
        x1 = int(rng.integers(0, width - w + 1))
        y1 = int(rng.integers(0, height - h + 1))
        boxes.append([x1, y1, x1 + w, y1 + h])
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return Case(image, boxes, [rect_mask(image.shape, b) for b in boxes])


def rect_mask(shape, box) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    mask[y1:y2, x1:x2] = 1
    return mask


def ellipse_mask(shape, box) -> np.ndarray:
    """The ellipse inscribed in ``box``: an object that does not fill its box (pixel centres inside)."""
    x1, y1, x2, y2 = box
    yy, xx = np.mgrid[: shape[0], : shape[1]] + 0.5
    cx, cy, ax, ay = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
    return ((((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2) <= 1).astype(np.uint8)


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """Bounding rectangle of a mask in continuous xyxy (pixel i covers [i, i+1))."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)


def run(pipeline: A.Compose, case: Case, seed: int, extra_masks: list[np.ndarray] = ()) -> dict:
    """One call with image, masks, boxes and labels; the labels are the boxes' own indices."""
    pipeline.set_random_seed(seed)
    valid = np.ones(case.image.shape[:2], np.uint8)  # where image content lands (not padding)
    masks = list(case.masks) + list(extra_masks) + [valid]
    out = pipeline(image=case.image, masks=masks, bboxes=case.boxes, labels=np.arange(len(case.boxes)))
    out["valid"] = mask_box(out["masks"][-1])
    out["labels"] = np.rint(np.asarray(out["labels"], np.float64)).astype(int)
    out["bboxes"] = np.asarray(out["bboxes"], np.float64).reshape(-1, 4)
    return out


def touches_border(box: np.ndarray, valid: np.ndarray) -> bool:
    """Whether a mask's box reaches the edge of the image content (``valid``, before any padding)."""
    return bool((box[:2] <= valid[:2]).any() or (box[2:] >= valid[2:]).any())


def box_errors(out: dict, tolerance: float = 1.0, rotated: bool = False) -> list[str]:
    """Where an output box is more than ``tolerance`` px from the bounding rectangle of its own mask.

    ``rotated``: a rotated box cut by the image border is the clipped box of its rotated corners,
    looser than the visible part of the object; there it must only contain the mask.
    """
    errors = []
    if len(set(out["labels"].tolist())) != len(out["labels"]):
        errors.append(f"labels duplicated: {out['labels'].tolist()}")
    for box, index in zip(out["bboxes"], out["labels"]):
        expected = mask_box(out["masks"][index])
        if expected is None:
            errors.append(f"box {index} kept although its mask left the image: {box.round(2).tolist()}")
            continue
        if rotated and touches_border(expected, out["valid"]):
            gap = max(box[0] - expected[0], box[1] - expected[1], expected[2] - box[2], expected[3] - box[3])
        else:
            gap = np.abs(box - expected).max()
        if gap > tolerance + 1e-3:  # albumentations keeps normalised coordinates in float32
            errors.append(f"box {index}: {box.round(2).tolist()} but its mask spans {expected.tolist()}")
    return errors
