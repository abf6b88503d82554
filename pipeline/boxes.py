"""Box conventions at the edges of the pipeline.

Inside the pipeline a box is absolute pixel ``[x1, y1, x2, y2]`` (float, continuous
coordinates: a box covering pixel columns 0..9 is ``x1=0, x2=10``). These numpy
converters translate the annotation formats at import time; model code uses
``torchvision.ops.box_convert`` on tensors instead.
"""

from __future__ import annotations

import numpy as np


def as_boxes(boxes) -> np.ndarray:
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def xywh_to_xyxy(boxes) -> np.ndarray:
    b = as_boxes(boxes)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def xyxy_to_xywh(boxes) -> np.ndarray:
    b = as_boxes(boxes)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def cxcywh_norm_to_xyxy(boxes, width: float, height: float) -> np.ndarray:
    """YOLO's normalised centre/size to absolute corners."""
    b = as_boxes(boxes) * np.array([width, height, width, height])
    half = b[:, 2:] / 2
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1)


def xyxy_to_cxcywh_norm(boxes, width: float, height: float) -> np.ndarray:
    b = as_boxes(boxes)
    centre = (b[:, :2] + b[:, 2:]) / 2
    size = b[:, 2:] - b[:, :2]
    return np.concatenate([centre, size], axis=1) / np.array([width, height, width, height])


# EXIF orientation -> where a stored-frame point (x, y) lands in the displayed frame,
# for a stored image of size (w, h). Mirrors PIL.ImageOps.exif_transpose.
_EXIF_POINT_MAPS = {
    1: lambda x, y, w, h: (x, y),
    2: lambda x, y, w, h: (w - x, y),  # mirror horizontal
    3: lambda x, y, w, h: (w - x, h - y),  # rotate 180
    4: lambda x, y, w, h: (x, h - y),  # mirror vertical
    5: lambda x, y, w, h: (y, x),  # transpose
    6: lambda x, y, w, h: (h - y, x),  # rotate 90 clockwise to display
    7: lambda x, y, w, h: (h - y, w - x),  # transverse
    8: lambda x, y, w, h: (y, w - x),  # rotate 90 counter-clockwise to display
}


def exif_displayed_size(orientation: int, width: int, height: int) -> tuple[int, int]:
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def exif_transform_boxes(boxes, orientation: int, width: int, height: int) -> np.ndarray:
    """Move boxes annotated on the stored pixels onto the EXIF-displayed image."""
    b = as_boxes(boxes)
    if orientation == 1 or len(b) == 0:
        return b.copy()
    point = _EXIF_POINT_MAPS[orientation]
    xa, ya = point(b[:, 0], b[:, 1], width, height)
    xb, yb = point(b[:, 2], b[:, 3], width, height)
    return np.stack(
        [np.minimum(xa, xb), np.minimum(ya, yb), np.maximum(xa, xb), np.maximum(ya, yb)], axis=1
    )
