"""Detection parity that holds on dense scenes: matched one to one, boundaries tolerated, and a
graph that moves boxes by 1 % refused with one line."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from pipeline.detect import export as detector_export
from pipeline.detect.anchors import make_anchors, spec_from_config
from pipeline.detect.coding import BoxCoder
from pipeline.detect.export import DetectorGraph, detection_parity
from pipeline.detect.model import SSD
from pipeline.detect.parity import MARGIN, compare, failures
from pipeline.export import build
from pipeline.predict.bundle import ONNX_FILE, PT2_FILE
from pipeline.predict.postprocess import detections as numpy_detections
from pipeline.predict.preprocess import fit_batch
from tests.conftest import tiny_config
from tests.helpers import detector_model


def found(scores, labels=None, boxes=None) -> dict:
    scores = np.asarray(scores, np.float32)
    n = len(scores)
    boxes = np.asarray(boxes if boxes is not None else [[10.0 * i, 0, 10.0 * i + 8, 8] for i in range(n)], np.float32)
    labels = np.asarray(labels if labels is not None else [0] * n, np.int64)
    return {"boxes": boxes, "scores": scores, "labels": labels}


def check(reference, candidate, threshold=0.05, cut=100, raw=None) -> dict:
    return compare([reference], [candidate], threshold, cut, raw)


def test_identical_detections_all_match():
    a = found([0.9, 0.5, 0.2])
    report = check(a, a)
    assert (report["matched"], report["unmatched"], report["unmatched_near_boundary"]) == (3, 0, 0)
    assert failures(report) == []


def test_a_swap_at_the_max_detections_cut_is_tolerated_not_failed():
    scores = [0.9, 0.8, 0.7000001]
    reference = found(scores)
    candidate = found([0.9, 0.8, 0.7000002], boxes=[[0, 0, 8, 8], [10, 0, 18, 8], [90, 0, 98, 8]])  # another 3rd
    report = check(reference, candidate, cut=3)
    assert (report["matched"], report["unmatched"], report["unmatched_near_boundary"]) == (2, 0, 2)
    assert failures(report) == []


def test_a_detection_on_either_side_of_the_threshold_is_tolerated():
    report = check(found([0.9, 0.05 + MARGIN / 2]), found([0.9]))
    assert (report["unmatched"], report["unmatched_near_boundary"]) == (0, 1)


def test_an_nms_tie_is_tolerated_when_both_runtimes_computed_both_boxes():
    reference = found([0.9, 0.6], boxes=[[0, 0, 8, 8], [50, 50, 60, 60]])
    candidate = found([0.9, 0.6000001], boxes=[[0, 0, 8, 8], [51, 50, 61, 60]])  # the other box won NMS
    assert check(reference, candidate)["unmatched"] == 2  # without the raw candidates: a real difference
    raw_boxes = np.array([[0, 0, 8, 8], [50, 50, 60, 60], [51, 50, 61, 60]], np.float32)
    raw = ([{"boxes": raw_boxes, "scores": np.array([[0.9], [0.6], [0.6000001]], np.float32)}],) * 2
    report = check(reference, candidate, raw=raw)
    assert (report["matched"], report["unmatched"], report["unmatched_near_boundary"]) == (1, 0, 2)


def test_a_missing_clear_detection_a_moved_box_a_wrong_class_and_a_score_drift_fail():
    reference = found([0.9, 0.6])
    assert check(reference, found([0.9]))["unmatched"] == 2 - 1
    moved = found([0.9, 0.6], boxes=[[0, 0, 8, 8], [10.2, 0, 18.2, 8]])  # IoU 0.95 < 0.99
    assert check(reference, moved)["unmatched"] == 2
    relabelled = found([0.9, 0.6], labels=[0, 1])
    assert check(reference, relabelled)["unmatched"] == 2
    drift = check(reference, found([0.9, 0.6005]))
    assert drift["unmatched"] == 0 and failures(drift) == [f"score_max_abs_diff {drift['score_max_abs_diff']:.3g} "
                                                          "> 0.0001"]


def test_float_noise_that_reorders_dense_candidates_is_tolerated():
    """What the two runtimes do on dense real data: scores a few 1e-6 apart, which reorders candidates
    at the top-k and max_detections cuts and in NMS; the old same-list check failed on exactly this."""
    rng = np.random.default_rng(3)
    centres = rng.uniform(10, 150, (4000, 2))
    boxes = np.clip(np.concatenate([centres - 8, centres + 8], 1) / 160, 0, 1).astype(np.float32)
    scores = rng.uniform(0.30, 0.31, (4000, 3)).astype(np.float32)  # 12,000 candidates within 0.01
    noisy = (scores + rng.normal(0, 2e-6, scores.shape)).astype(np.float32)
    settings = {"score_threshold": 0.3, "nms_iou": 0.5, "top_k": 1000, "max_detections": 100,
                "vote_iou": 0.5, "vote_power": 2.0}
    reference, candidate = (numpy_detections(s, boxes, (160, 160), **settings) for s in (scores, noisy))
    assert not np.array_equal(reference["labels"], candidate["labels"])  # the lists do differ
    raw = [{"boxes": boxes * 160, "scores": scores}], [{"boxes": boxes * 160, "scores": noisy}]
    report = compare([reference], [candidate], 0.3, 100, raw)
    assert report["unmatched"] == 0 and report["unmatched_near_boundary"] > 0 and failures(report) == []
    assert report["matched"] >= 80


def dense_detector(size=(96, 96), score_threshold: float = 0.3) -> tuple[DetectorGraph, dict]:
    """An untrained SSD with random class heads: on noise images its 3,492 (anchor, class) scores
    spread over 0.08-0.82, hundreds of candidates per image, spaced closer than the parity margin:
    ties at a threshold inside that range, and at the ``max_detections`` cut below it."""
    torch.manual_seed(0)
    anchors_cfg = {"levels": [0, 1, 2, 3, 4], "sizes": [0.1, 0.2, 0.4, 0.6, 0.8], "zooms": [1.0, 1.41],
                   "ratios": [1.0, 2.0, 0.5]}
    model = detector_model(backbone="scratch", pretrained="none", width=16, extra_channels=32, prior=0.01, neck="fpn",
                           head_depth=1, anchors=anchors_cfg)
    probe = SSD(3, 1, size, replace(model, neck="none", head_depth=0))
    spec = spec_from_config(model.anchors, len(probe.grids))
    net = SSD(3, spec.per_cell, size, model).eval()
    for p in net.class_heads.parameters():
        torch.nn.init.normal_(p, std=0.2)
    anchors = make_anchors(net.grids, spec, size)
    post = {"score_threshold": score_threshold, "nms_iou": 0.5, "top_k": 1000, "max_detections": 100,
            "vote_iou": 0.5, "vote_power": 2.0}
    return DetectorGraph(net, anchors, BoxCoder("ssd", (0.1, 0.2)), size, flip=False).eval(), post


def dense_exportable(graph, post, size=(96, 96)) -> build.Exportable:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(3)]
    pre = {"input_size": list(size), "resize": "letterbox", "pad_fill": 114, "mean": [0.5] * 3, "std": [0.5] * 3,
           "normalised_in_graph": True}
    spec = {"task": "detector", "labels": ["a", "b", "c"], "preprocessing": pre, "postprocessing": post}
    return build.Exportable(graph, spec, [fit_batch(images, pre)[0]], images, parity=detection_parity)


@torch.no_grad()
def exported_parity(graph, post, tmp_path) -> dict:
    ex = dense_exportable(graph, post)
    program = build.exported_program(ex)
    torch.export.save(program, tmp_path / PT2_FILE)
    build.export_onnx(program, ex, tmp_path / ONNX_FILE)
    return build.parity(ex, tmp_path)


@pytest.mark.parametrize("threshold, lists_full", [(0.3, True), (0.72, False)])
def test_a_dense_scene_with_ties_at_the_threshold_and_the_cut_passes(tmp_path, threshold, lists_full):
    graph, post = dense_detector(score_threshold=threshold)
    report = exported_parity(graph, post, tmp_path)
    d = report["detections"]
    assert (d["detections"] == 3 * post["max_detections"]) == lists_full  # 0.3: every list cut at 100
    assert d["detections"] >= 30 and d["matched"] >= 0.9 * d["detections"] and d["unmatched"] == 0
    assert report["failed"] == [], report["failed"]


class MovedBoxes(DetectorGraph):
    """The exported graph with its boxes scaled by 1.01: what a wrong export would compute."""

    def forward(self, images):
        scores, boxes = super().forward(images)
        return scores, boxes * 1.01


def test_a_graph_that_moves_boxes_by_one_percent_fails_its_export_in_one_line_with_the_report_kept(tiny_data, tmp_path,
                                                                                                  monkeypatch):
    graph, post = dense_detector()
    moved = MovedBoxes(graph.net, graph.anchors, graph.coder, (96, 96), flip=False).eval()
    monkeypatch.setattr(detector_export, "load_detector_export", lambda *args: dense_exportable(moved, post))
    parity_file = tmp_path / "parity.json"
    with pytest.raises(build.ParityError) as error:
        build.export_bundle("detector", tiny_config(tmp_path), tmp_path / "model", tiny_data / "prepared/manifest.json",
                            None, tmp_path / "bundle", parity_file)
    message = str(error.value)
    assert "\n" not in message and message.startswith("export detector: parity failed: unmatched detections")
    assert message.endswith(f"(the full report is in {parity_file})")
    report = json.loads(parity_file.read_text())
    assert report["onnx_max_abs_diff"] < 1e-4  # the runtimes agree on the wrong graph ...
    assert report["detections"]["unmatched"] > 0  # ... which does not compute the model's detections
    assert report["failed"] and report["failed"][0].startswith("unmatched detections")
    assert not (tmp_path / "bundle").exists()
