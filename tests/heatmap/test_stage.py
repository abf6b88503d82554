"""Heatmap geometry, boxes from heatmaps, the pointing game, and the stage on tiny data."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from pipeline.data.manifest import Manifest
from pipeline.heatmap import stage
from pipeline.heatmap.fcn import Geometry, window_geometry
from pipeline.heatmap.stage import ScaleMaps, agreement, cell_boxes, heatmap_detections, inside, peak, run_heatmaps
from pipeline.heatmap.train import train_fcn
from tests.conftest import tiny_config


def test_cell_boxes_sit_on_window_centres_in_scene_pixels():
    g = window_geometry(8, (64, 64))
    boxes = cell_boxes(g, 2, 3, scale=2.0, context=0.25)
    assert boxes.shape == (2, 3, 4)
    # cell (1, 2): window at (16, 8) of the 2x image, centre (48, 40) -> (24, 20) in the scene
    assert np.allclose(boxes[1, 2], [24 - 12.8, 20 - 12.8, 24 + 12.8, 20 + 12.8])
    padded = Geometry(32, (64, 64), valid=False)
    assert padded.centers(2, 0).tolist() == [16, 48]


def test_connected_cells_above_threshold_become_one_box_each():
    probs = torch.zeros(3, 4, 6)
    probs[0, 0:2, 0:2] = 0.9  # one blob of class 0
    probs[1, 3, 5] = 0.8  # a single cell of class 1
    probs[2] = 1.0  # background: never a detection
    boxes = cell_boxes(window_geometry(8, (16, 16)), 4, 6, 1.0, 0.0)
    found_boxes, scores, labels = heatmap_detections(probs, boxes, 0.5, num_objects=2)
    assert labels.tolist() == [0, 1] and scores.tolist() == [np.float32(0.9), np.float32(0.8)]
    assert found_boxes[0].tolist() == [4, 4, 20, 20]  # mean of the windows of cells (0..1, 0..1)


def test_pointing_game_peak_prefers_the_middle_of_a_blob():
    g = window_geometry(8, (16, 16))
    p = torch.zeros(2, 5, 5)
    p[0, 0, 0] = 1.0  # an isolated saturated cell
    p[0, 2:5, 2:5] = 1.0  # a saturated blob: its centre is cell (3, 3)
    maps = [ScaleMaps(1.0, {"fcn": p})]
    assert peak(maps, "fcn", 0, g, smooth=3) == (32.0, 32.0)
    assert peak(maps, "fcn", 0, g, smooth=1) == (8.0, 8.0)
    assert inside((32, 32), [[20, 20, 40, 40]]) and not inside((8, 8), [[20, 20, 40, 40]])


def test_agreement_of_identical_maps_is_perfect():
    a = torch.rand(3, 4, 4)
    result = agreement([(a, a.clone())], 2, 0.5)
    assert result["correlation"] > 0.9999 and result["iou"] == 1.0 and result["max_abs_diff"] == 0.0


FIRST_CALL_SECONDS = 0.3


def slow_on_each_new_shape(methods: dict) -> dict:
    """The methods, each taking FIRST_CALL_SECONDS longer on its first call at an input shape (what a
    runtime choosing its kernels does) and as fast as before after it."""
    def slowed(logits):
        seen = set()

        def call(image):
            if tuple(image.shape) not in seen:
                seen.add(tuple(image.shape))
                time.sleep(FIRST_CALL_SECONDS)
            return logits(image)
        return call

    return {name: replace(m, logits=slowed(m.logits)) for name, m in methods.items()}


def test_stage_on_tiny_scenes_writes_metrics_and_overlays(tiny_data, tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path, "train.fcn.epochs=1", "train.fcn.dense.epochs=1")
    train_fcn(cfg, tiny_data / "prepared/manifest.json", tiny_data / "augment", tmp_path / "model")
    methods = stage.heatmap_methods
    monkeypatch.setattr(stage, "heatmap_methods", lambda *args: slow_on_each_new_shape(methods(*args)))
    cfg.evaluate.fcn = OmegaConf.merge(cfg.evaluate.fcn, {"scales": [1.0, 2.0], "compare_scenes": 1,
                                                          "compare_scales": [2.0]})
    results = run_heatmaps(cfg, tiny_data / "prepared/manifest.json", tmp_path / "model", tmp_path / "m.json",
                           tmp_path / "reports")
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["stride"] == 8 and saved["valid_convolutions"] and saved["compared_scenes"] == 1
    # the sliding window ran on the first scene at scale 2 only: its windows are that image's cells
    first = Manifest.read(tiny_data / "prepared/manifest.json").split(saved["split"])[0]
    cells = [(round(n * 2) - saved["window"][i]) // 8 + 1 for i, n in enumerate((first.width, first.height))]
    assert saved["compared_scales"] == [2.0] and saved["sliding_windows"] == cells[0] * cells[1]
    overlapping = {"sliding_overlap_0", "sliding_overlap_25"}  # evaluate.fcn.sliding_overlaps: [0.0, 0.25]
    assert saved["dense_epochs"] == 1 and set(saved["pointing_game"]) == {"fcn", "sliding", "before_dense",
                                                                            *overlapping}
    window = min(saved["window"])
    assert saved["strides"] == {"fcn": 8, "sliding": 8, "before_dense": 8, "sliding_overlap_0": window,
                                "sliding_overlap_25": round(0.75 * window)}
    # each method is timed on a call after its first one at the compared image's shape (the sliding
    # window's many windows may take longer than the first call's delay on a busy machine)
    quick = {name: s for name, s in saved["seconds_on_compared_scenes"].items() if name != "sliding"}
    assert len(quick) == 4 and max(quick.values()) < FIRST_CALL_SECONDS, saved["seconds_on_compared_scenes"]
    for name in overlapping:  # every scene, like the FCN; timed on the compared one, like the others
        assert results["pointing_pairs"][name] == results["pointing_pairs"]["fcn"]
        assert 0 < saved["seconds_on_compared_scenes"][name] < saved["seconds_on_compared_scenes"]["sliding"]
        assert saved["speed_ratios"][name] == pytest.approx(
            saved["seconds_on_compared_scenes"][name] / saved["seconds_on_compared_scenes"]["fcn"])
    assert results["agreement"]["max_abs_diff"] < 1e-4  # valid network: the two maps are the same numbers
    assert 0 <= results["pointing_game"]["fcn"] <= 1 and results["pointing_pairs"]["fcn"] > 0
    assert results["pointing_pairs"]["before_dense"] == results["pointing_pairs"]["fcn"]  # all scenes
    assert (tmp_path / "reports/overlays.png").stat().st_size > 10_000
    cfg.evaluate.fcn.compare_scales = [3.0]
    with pytest.raises(ValueError, match=r"compare_scales \[3.0\] must be among evaluate.fcn.scales"):
        run_heatmaps(cfg, tiny_data / "prepared/manifest.json", tmp_path / "model", tmp_path / "m2.json",
                     tmp_path / "reports2")
