"""The detection report's curves against confidence and its confusion matrix with background, on
hand-made detections whose every number is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.detect.report import THRESHOLDS, best_f1, confidence_curves, confusion_pairs


def target(boxes, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels)}


def pred(boxes, scores, labels):
    return {**target(boxes, labels), "scores": torch.tensor(scores, dtype=torch.float32)}


def at(threshold: float) -> int:
    return int(np.argmin(np.abs(THRESHOLDS - threshold)))


def test_precision_recall_and_f1_follow_the_threshold():
    """One class, two objects: a hit at 0.9, a false alarm at 0.6, a hit at 0.355; a duplicate of
    the first hit at 0.2 counts as a false alarm."""
    targets = [target([[0, 0, 10, 10]], [0]), target([[20, 20, 30, 30]], [0])]
    preds = [pred([[0, 0, 10, 10], [50, 50, 60, 60], [1, 0, 10, 10]], [0.9, 0.6, 0.2], [0, 0, 0]),
             pred([[20, 20, 30, 31]], [0.355], [0])]
    curves = confidence_curves(preds, targets, 1)
    p, r, f1 = curves["precision"][0], curves["recall"][0], curves["f1"][0]
    assert (p[at(0.7)], r[at(0.7)]) == (1.0, 0.5)                    # the 0.9 hit alone
    assert (p[at(0.5)], r[at(0.5)], f1[at(0.5)]) == (0.5, 0.5, 0.5)  # and the 0.6 false alarm
    assert p[at(0.3)] == pytest.approx(2 / 3) and r[at(0.3)] == 1.0 and f1[at(0.3)] == pytest.approx(0.8)
    assert p[at(0.1)] == 0.5 and r[at(0.1)] == 1.0                   # the duplicate at 0.2 is one more false alarm
    assert np.isnan(p[at(0.95)]) and r[at(0.95)] == 0.0 and f1[at(0.95)] == 0.0  # nothing kept
    best = best_f1(curves)
    assert best == {"best_f1": pytest.approx(0.8), "best_f1_confidence": pytest.approx(0.35),
                    "precision_at_best_f1": pytest.approx(2 / 3), "recall_at_best_f1": 1.0}


def test_a_class_without_objects_does_not_count_in_the_mean():
    targets = [target([[0, 0, 10, 10]], [0])]
    preds = [pred([[0, 0, 10, 10], [40, 40, 50, 50]], [0.8, 0.7], [0, 1])]
    curves = confidence_curves(preds, targets, 2)
    assert np.all(np.isnan(curves["f1"][1])) and best_f1(curves)["best_f1"] == 1.0


def test_the_confusion_matrix_pairs_objects_and_detections_with_background():
    """Classes 0 and 1, background 2: an object of class 0 taken for 1, one of class 1 found, one of
    class 0 missed, a detection of nothing, a duplicate, and one below the threshold (ignored)."""
    targets = [target([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]], [0, 1, 0])]
    preds = [pred([[0, 0, 10, 10], [20, 0, 30, 10], [80, 80, 90, 90], [21, 0, 30, 10], [40, 0, 50, 10]],
                  [0.9, 0.8, 0.7, 0.6, 0.1], [1, 1, 0, 1, 0])]
    pairs = confusion_pairs(preds, targets, confidence=0.5, background=2)
    assert sorted(pairs) == sorted([(0, 1), (1, 1), (0, 2), (2, 0), (2, 1)])
    assert sorted(confusion_pairs(preds, targets, confidence=0.05, background=2)) == sorted(
        [(0, 1), (1, 1), (0, 0), (2, 0), (2, 1)])  # the 0.1 detection now finds the third object
