"""Detection metrics with torchmetrics' MeanAveragePrecision (COCO protocol, faster_coco_eval by
default): mAP@[.5:.95], mAP@0.5 (the VOC-style headline), mAP@0.75, small/medium/large, and
per-class AP@0.5 and AP@[.5:.95]."""

from __future__ import annotations

import math

import torch
from torchmetrics.detection import MeanAveragePrecision

BACKENDS = ("faster_coco_eval", "pycocotools")


def _value(tensor: torch.Tensor) -> float | None:
    value = float(tensor)
    return None if value < 0 or math.isnan(value) else value  # COCO writes -1 for "no such objects"


def detection_metrics(preds: list[dict], targets: list[dict], classes: list[str],
                      backend: str = "faster_coco_eval") -> dict:
    """``preds``: per image boxes (xyxy), scores, labels; ``targets``: boxes, labels."""
    if backend not in BACKENDS:
        raise ValueError(f"mAP backend {backend!r}: choose one of {BACKENDS}")
    overall = MeanAveragePrecision(iou_type="bbox", backend=backend, class_metrics=True)
    at_50 = MeanAveragePrecision(iou_type="bbox", backend=backend, class_metrics=True, iou_thresholds=[0.5])
    for metric in (overall, at_50):
        metric.update(preds, targets)
    a, b = overall.compute(), at_50.compute()
    per_class = {}
    seen = a["classes"].flatten().tolist()
    for i, c in enumerate(seen):
        per_class[classes[int(c)]] = {"ap": _value(a["map_per_class"].flatten()[i]),
                                      "ap50": _value(b["map_per_class"].flatten()[i])}
    return {
        "map": _value(a["map"]), "map_50": _value(a["map_50"]), "map_75": _value(a["map_75"]),
        "map_small": _value(a["map_small"]), "map_medium": _value(a["map_medium"]),
        "map_large": _value(a["map_large"]), "mar_100": _value(a["mar_100"]), "per_class": per_class,
        "images": len(targets), "objects": int(sum(len(t["labels"]) for t in targets)),
        "detections": int(sum(len(p["labels"]) for p in preds)),
    }
