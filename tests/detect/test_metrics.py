"""mAP: perfect predictions, shifted boxes, and the two COCO backends on one fixture."""

from __future__ import annotations

import pytest
import torch

from pipeline.detect.metrics import detection_metrics

CLASSES = ["a", "b"]


def fixture(shift: float = 0.0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    preds, targets = [], []
    for _ in range(6):
        xy = torch.rand(4, 2, generator=g) * 100
        boxes = torch.cat([xy, xy + 40 + torch.rand(4, 2, generator=g) * 40], dim=1)  # 40-80 px: medium/large
        labels = torch.randint(0, 2, (4,), generator=g)
        moved = boxes + torch.tensor([shift, 0.0, shift, 0.0])
        preds.append({"boxes": moved, "scores": torch.rand(4, generator=g) * 0.5 + 0.5, "labels": labels})
        targets.append({"boxes": boxes, "labels": labels})
    return preds, targets


def test_perfect_predictions_score_one():
    result = detection_metrics(*fixture(), CLASSES)
    assert result["map"] == pytest.approx(1.0) and result["map_50"] == pytest.approx(1.0)
    assert set(result["per_class"]) == {"a", "b"} and result["per_class"]["a"]["ap50"] == pytest.approx(1.0)
    assert result["map_small"] is None  # no small objects: reported as missing, not as -1


def test_shifted_boxes_lose_ap_at_the_thresholds_they_fall_under():
    # a 20 px shift of a 40-80 px box: IoU 0.33-0.6, so some pass 0.5, none pass 0.75
    result = detection_metrics(*fixture(shift=20.0), CLASSES)
    assert 0.0 < result["map_50"] < 1.0 and result["map_75"] == pytest.approx(0.0)
    assert result["map"] < result["map_50"]
    far = detection_metrics(*fixture(shift=200.0), CLASSES)
    assert far["map_50"] == pytest.approx(0.0)


def test_faster_coco_eval_and_pycocotools_agree():
    preds, targets = fixture(shift=8.0, seed=3)
    fast = detection_metrics(preds, targets, CLASSES, "faster_coco_eval")
    reference = detection_metrics(preds, targets, CLASSES, "pycocotools")
    for key in ("map", "map_50", "map_75", "map_medium", "map_large"):
        assert fast[key] == pytest.approx(reference[key], abs=1e-6), key
