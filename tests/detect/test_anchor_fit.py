"""Anchors fitted to the boxes: at least the preset's coverage, the numbers kept in the model's
config so every later stage builds the same anchors."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from pipeline.config import compose
from pipeline.detect.anchor_fit import coverage, fit_anchors
from pipeline.detect.anchors import AnchorSpec, make_anchors, spec_from_config
from pipeline.detect.data import DetectionData
from pipeline.detect.settings import DetectorModel
from pipeline.detect.train import build_detector, feature_grids, fitted_config
from tests.helpers import detector_model

GRIDS = [(20, 20), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
SIZE = (160, 160)


def test_on_the_fixture_the_fit_covers_at_least_what_the_preset_does(tiny_data):
    mc = DetectorModel.of(compose(["data=synthetic_tiny"]).model.detector)
    assert mc.anchors.fit  # the default
    data = DetectionData(tiny_data / "prepared/manifest.json", tiny_data / "augment", 8, 0, 0)
    fitted, report = fitted_config(mc, data, data.input_size(), 0.5)
    assert report["boxes"] == sum(len(s.boxes) for split in ("train", "val") for s in data.samples[split])
    assert report["fitted"]["recall"] >= report["preset"]["recall"] and report["chosen"] == "fitted"
    assert report["fitted"]["fitness"] >= report["preset"]["fitness"]
    assert not fitted.anchors.fit and list(fitted.anchors.sizes) == report["fitted"]["sizes"]
    assert list(fitted.anchors.ratios) == report["fitted"]["ratios"]
    _, anchors, _ = build_detector(fitted, data.classes, data.input_size())  # what evaluate and export rebuild
    grids = feature_grids(fitted, len(data.classes), data.input_size())
    expected = make_anchors(grids, AnchorSpec(tuple(fitted.anchors.zooms), tuple(report["fitted"]["ratios"]),
                                              tuple(report["fitted"]["sizes"])), data.input_size())
    assert torch.equal(anchors, expected)
    unfitted, none = fitted_config(replace(mc, anchors=replace(mc.anchors, fit=False)), data, data.input_size(), 0.5)
    assert none is None and list(unfitted.anchors.sizes) == list(mc.anchors.sizes)


def test_tall_boxes_get_tall_anchors_and_a_recall_the_preset_lacks():
    """Boxes 1:4 (width:height) of 12-60 px all over the image: the preset's ratios stop at 1:2."""
    g = torch.Generator().manual_seed(0)
    heights = 12 + 48 * torch.rand(300, generator=g)
    widths = heights / 4
    x0, y0 = (160 - widths) * torch.rand(300, generator=g), (160 - heights) * torch.rand(300, generator=g)
    boxes = [torch.stack([x0, y0, x0 + widths, y0 + heights], dim=1)]
    preset = spec_from_config(detector_model().anchors, len(GRIDS))
    labels = [torch.zeros(300, dtype=torch.long)]
    spec, report = fit_anchors(boxes, labels, preset, GRIDS, SIZE, 0.5)
    assert report["chosen"] == "fitted" and min(spec.ratios) == pytest.approx(0.25, rel=0.15)
    assert report["fitted"]["recall"] > report["preset"]["recall"] + 0.1  # fitted 0.61, preset 0.46
    assert coverage(boxes, labels, make_anchors(GRIDS, spec, SIZE), 0.5) == {
        k: report["fitted"][k] for k in ("recall", "mean_iou", "fitness", "worst_class_recall")}


def squares(n: int, smallest: float, largest: float, generator: torch.Generator) -> torch.Tensor:
    side = smallest + (largest - smallest) * torch.rand(n, generator=generator)
    x0, y0 = (160 - side) * torch.rand(n, generator=generator), (160 - side) * torch.rand(n, generator=generator)
    return torch.stack([x0, y0, x0 + side, y0 + side], dim=1)


def test_a_rare_class_of_small_objects_gets_anchors_of_its_size():
    """560 boxes of 24-40 px and 40 of a second class of 8-12 px (as BCCD's platelets among its red
    cells): the fit weighs the classes equally, as mAP does, instead of letting the common one outvote."""
    g = torch.Generator().manual_seed(0)
    boxes = [torch.cat([squares(560, 24, 40, g), squares(40, 8, 12, g)])]
    labels = [torch.cat([torch.zeros(560, dtype=torch.long), torch.ones(40, dtype=torch.long)])]
    preset = spec_from_config(detector_model().anchors, len(GRIDS))
    spec, report = fit_anchors(boxes, labels, preset, GRIDS, SIZE, 0.5)
    assert report["chosen"] == "fitted" and min(spec.sizes) * SIZE[0] <= 12
    # fitted 0.60, preset 0.10; fitness over all boxes alone fits 27-40 px anchors, and 0.0
    assert report["fitted"]["worst_class_recall"] >= 0.5 > report["preset"]["worst_class_recall"]


def test_no_boxes_to_fit_is_a_clear_error():
    preset = spec_from_config(detector_model().anchors, len(GRIDS))
    with pytest.raises(ValueError, match="no boxes to fit"):
        fit_anchors([torch.zeros(0, 4)], [torch.zeros(0, dtype=torch.long)], preset, GRIDS, SIZE, 0.5)
