"""Detector outputs to detections in numpy: score threshold, top-k, per-class NMS, at most
``max_detections``, box voting; the same rules as pipeline.detect.postprocess (torchvision) on the
same numbers, checked by `export`'s parity test."""

from __future__ import annotations

import numpy as np

SETTINGS = ("score_threshold", "nms_iou", "top_k", "max_detections", "vote_iou", "vote_power")
VOTING = "train.detector.postprocess"


def check_voting(vote_iou, vote_power) -> None:
    """The box-voting settings: ``vote_iou`` in [0, 1) or None (off), ``vote_power`` a number >= 0."""
    if vote_iou is not None and (isinstance(vote_iou, bool) or not isinstance(vote_iou, (int, float))
                                 or not 0 <= vote_iou < 1):
        raise ValueError(f"{VOTING}.vote_iou: {vote_iou!r} is neither an IoU in [0, 1) nor null (no voting)")
    if isinstance(vote_power, bool) or not isinstance(vote_power, (int, float)) or vote_power < 0:
        raise ValueError(f"{VOTING}.vote_power: {vote_power!r} is not a number >= 0")


def check_flip(flip) -> None:
    """``flip`` (test-time augmentation with the mirror image, pipeline/detect/views.py): auto, true or false."""
    if isinstance(flip, bool) or flip == "auto":
        return
    raise ValueError(f"{VOTING}.flip: {flip!r} is not auto, true or false")


def check_postprocess(cfg) -> None:
    """The registry's check of `train.detector.postprocess`, before any work starts."""
    check_voting(cfg.train.detector.postprocess.vote_iou, cfg.train.detector.postprocess.vote_power)
    check_flip(cfg.train.detector.postprocess.flip)


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


def vote(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, kept: np.ndarray, vote_iou: float,
         vote_power: float) -> np.ndarray:
    """Box voting: each kept box moved to the mean of the candidates of its class that overlap it by
    more than ``vote_iou`` (itself included), each weighted by its score ** ``vote_power``."""
    merged = boxes[kept].copy()
    for row, i in enumerate(kept):
        voters = np.nonzero(labels == labels[i])[0]
        voters = voters[(iou_one_to_many(boxes[i], boxes[voters]) > vote_iou) | (voters == i)]
        weights = scores[voters] ** np.float32(vote_power)
        if weights.sum() > 0:  # scores that underflow at a high power: the box as it was
            merged[row] = weights @ boxes[voters] / weights.sum()
    return merged


def detections(scores: np.ndarray, boxes: np.ndarray, size: tuple[int, int], score_threshold: float,
               nms_iou: float, top_k: int, max_detections: int, vote_iou: float | None,
               vote_power: float) -> dict[str, np.ndarray]:
    """One image: ``scores`` A x K (sigmoid), ``boxes`` A x 4 (xyxy, fractions of the input) ->
    boxes (input pixels), scores, labels, best first; ``vote_iou`` None: the kept boxes as they are."""
    check_voting(vote_iou, vote_power)
    width, height = size
    flat = scores.reshape(-1)
    keep = np.nonzero(flat > score_threshold)[0]
    keep = keep[np.argsort(-flat[keep], kind="stable")[:top_k]]
    anchor, labels = keep // scores.shape[1], keep % scores.shape[1]
    picked = np.clip(boxes[anchor] * np.array([width, height, width, height], dtype=np.float32), 0,
                     np.array([width, height, width, height], dtype=np.float32))
    kept = nms(picked, flat[keep], labels, nms_iou)[:max_detections]
    found = picked[kept] if vote_iou is None else vote(picked, flat[keep], labels, kept, vote_iou, vote_power)
    return {"boxes": found.astype(np.float32), "scores": flat[keep][kept], "labels": labels[kept]}
