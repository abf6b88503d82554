"""Detector outputs to detections in numpy: score threshold, top-k, per-class NMS, at most
``max_detections``; the same rules as pipeline.detect.postprocess (torchvision) on the same
numbers, checked by `export`'s parity test."""

from __future__ import annotations

import numpy as np

SETTINGS = ("score_threshold", "nms_iou", "top_k", "max_detections")


def settings(postprocessing: dict) -> dict:
    """The post-processing settings of a bundle's ``postprocessing`` entry."""
    return {k: postprocessing[k] for k in SETTINGS if k in postprocessing}


def area(boxes: np.ndarray) -> np.ndarray:
    return np.prod(np.clip(boxes[..., 2:] - boxes[..., :2], 0, None), axis=-1)


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-12)


def nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS within each label, best score first."""
    order = np.argsort(-scores, kind="stable")
    kept = []
    suppressed = np.zeros(len(order), dtype=bool)
    for rank, i in enumerate(order):
        if suppressed[rank]:
            continue
        kept.append(i)
        rest = order[rank + 1:]
        same = labels[rest] == labels[i]
        overlap = np.zeros(len(rest), dtype=bool)
        overlap[same] = iou_one_to_many(boxes[i], boxes[rest[same]]) > iou
        suppressed[rank + 1:] |= overlap
    return np.array(kept, dtype=np.int64)


def detections(scores: np.ndarray, boxes: np.ndarray, size: tuple[int, int], score_threshold: float,
               nms_iou: float, top_k: int, max_detections: int) -> dict[str, np.ndarray]:
    """One image: ``scores`` A x K (sigmoid), ``boxes`` A x 4 (xyxy, fractions of the input) ->
    boxes (input pixels), scores, labels, best first."""
    width, height = size
    flat = scores.reshape(-1)
    keep = np.nonzero(flat > score_threshold)[0]
    keep = keep[np.argsort(-flat[keep], kind="stable")[:top_k]]
    anchor, labels = keep // scores.shape[1], keep % scores.shape[1]
    picked = np.clip(boxes[anchor] * np.array([width, height, width, height], dtype=np.float32), 0,
                     np.array([width, height, width, height], dtype=np.float32))
    kept = nms(picked, flat[keep], labels, nms_iou)[:max_detections]
    return {"boxes": picked[kept], "scores": flat[keep][kept], "labels": labels[kept]}
