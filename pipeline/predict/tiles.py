"""Sliced inference for large images with small objects: cut the image into overlapping tiles of
the network's input size (no resizing, so a 20 px object stays 20 px), detect in every tile, shift
the boxes back, and merge what neighbouring tiles found twice.

Numpy only: `predict` runs it on onnxruntime outputs and the evaluation on the PyTorch model's, so
both score the same merged boxes. Hand-written: torchvision has no tiling, and its NMS compares
boxes by IoU, which keeps both halves of an object cut by a tile border (a half box and the whole
box overlap by IoU <= 0.5); the merge here compares by intersection over the smaller box, as
SAHI's greedy non-maximum merging does, and a box cut by its tile's border grows to cover the
part of the object that the neighbouring tile saw.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from pipeline.predict.postprocess import area


def positions(length: int, tile: int, stride: int) -> list[int]:
    """Tile starts along one axis: every ``stride``, the last flush with the far edge."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def windows(width: int, height: int, tile: tuple[int, int], overlap: float) -> np.ndarray:
    """N x 4 tile windows (x0, y0, x1, y1) covering a ``width`` x ``height`` image; neighbours share
    ``overlap`` of a tile. A window may pass the image's right or bottom edge when the image is
    smaller than a tile (:func:`cut` pads it)."""
    if not 0 <= overlap < 1:
        raise ValueError(f"tiles.overlap: {overlap} is not in [0, 1)")
    tw, th = (int(v) for v in tile)
    xs = positions(width, tw, max(1, round(tw * (1 - overlap))))
    ys = positions(height, th, max(1, round(th * (1 - overlap))))
    return np.array([[x, y, x + tw, y + th] for y in ys for x in xs], dtype=np.int64)


def cut(pixels: np.ndarray, window, fill: int) -> np.ndarray:
    """The window's pixels (H x W x 3 uint8), padded with ``fill`` where it passes the image."""
    x0, y0, x1, y1 = (int(v) for v in window)
    part = pixels[y0:y1, x0:x1]
    if part.shape[:2] == (y1 - y0, x1 - x0):
        return part
    tile = np.full((y1 - y0, x1 - x0, pixels.shape[2]), fill, dtype=pixels.dtype)
    tile[:part.shape[0], :part.shape[1]] = part
    return tile


def intersection_over_smaller(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    return inter / np.maximum(np.minimum(area(box), area(boxes)), 1e-12)


def cut_by_border(boxes: np.ndarray, tiles: np.ndarray, width: int, height: int, margin: float = 1.0) -> np.ndarray:
    """Whether each box touches a side of its tile that lies inside the image: the object may go on
    in the next tile. ``tiles`` holds each box's tile window."""
    inner = np.stack([tiles[:, 0] > 0, tiles[:, 1] > 0, tiles[:, 2] < width, tiles[:, 3] < height], axis=1)
    touches = np.stack([boxes[:, 0] <= tiles[:, 0] + margin, boxes[:, 1] <= tiles[:, 1] + margin,
                        boxes[:, 2] >= tiles[:, 2] - margin, boxes[:, 3] >= tiles[:, 3] - margin], axis=1)
    return (inner & touches).any(axis=1)


def merge(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, tile_ids: np.ndarray, cut: np.ndarray,
          ios: float, max_detections: int) -> dict[str, np.ndarray]:
    """Greedy merging across tiles, best score first, per class: a box from another tile that
    overlaps a kept box by more than ``ios`` of the smaller one is the same object seen twice and
    is dropped. A kept box that its tile's border ``cut`` grows to cover the boxes it absorbed (the
    neighbour saw the rest of the object); an uncut one keeps its extent, so that low-scored
    neighbours never inflate it. Boxes of the same tile were already separated by the tile's own
    NMS and are never merged."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores, labels = boxes[order].copy(), scores[order], labels[order]
    tile_ids, cut = tile_ids[order], cut[order]
    absorbed = np.zeros(len(order), dtype=bool)
    kept = []
    for i in range(len(order)):
        if absorbed[i]:
            continue
        kept.append(i)
        rest = np.arange(i + 1, len(order))
        rest = rest[(labels[rest] == labels[i]) & (tile_ids[rest] != tile_ids[i])]
        while True:  # a grown box may reach boxes it missed (a third tile's part of the object)
            rest = rest[~absorbed[rest]]
            same = rest[intersection_over_smaller(boxes[i], boxes[rest]) > ios] if len(rest) else rest
            absorbed[same] = True
            if not (len(same) and cut[i]):
                break
            boxes[i, :2] = np.minimum(boxes[i, :2], boxes[same, :2].min(axis=0))
            boxes[i, 2:] = np.maximum(boxes[i, 2:], boxes[same, 2:].max(axis=0))
    kept = np.array(kept[:max_detections], dtype=np.int64)
    return {"boxes": boxes[kept].reshape(-1, 4).astype(np.float32), "scores": scores[kept].astype(np.float32),
            "labels": labels[kept].astype(np.int64)}


def sliced_detections(pixels: np.ndarray, tile: tuple[int, int], overlap: float, fill: int, ios: float,
                      max_detections: int, detect_tiles: Callable[[list[np.ndarray]], list[dict]],
                      batch_size: int = 32) -> dict[str, np.ndarray]:
    """Detections on a whole image (H x W x 3 uint8), in its own pixels. ``detect_tiles`` maps a
    list of tiles to each tile's detections (numpy ``boxes`` in tile pixels, ``scores``, ``labels``)."""
    h, w = pixels.shape[:2]
    cuts = windows(w, h, tile, overlap)
    found = []
    for start in range(0, len(cuts), batch_size):
        part = cuts[start:start + batch_size]
        found += detect_tiles([cut(pixels, window, fill) for window in part])
    boxes = [f["boxes"].reshape(-1, 4) + np.tile(window[:2], 2) for f, window in zip(found, cuts)]
    tile_ids = np.concatenate([np.full(len(f["scores"]), i) for i, f in enumerate(found)])
    boxes = np.clip(np.concatenate(boxes), 0, [w, h, w, h]).astype(np.float32)
    return merge(boxes, np.concatenate([f["scores"] for f in found]).astype(np.float32),
                 np.concatenate([f["labels"] for f in found]).astype(np.int64), tile_ids,
                 cut_by_border(boxes, cuts[tile_ids], w, h), ios, max_detections)
