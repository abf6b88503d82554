"""`augment.detector.input_size: auto`: the largest listed size that does not upscale the median
training image, chosen by the augment stage and written into the pipelines."""

from __future__ import annotations

import pytest

from pipeline.augment.build import build_pipeline, load_pipeline
from pipeline.augment.input_size import choose_input_size, resolve_input_size
from pipeline.augment.stage import run_augment
from pipeline.config import compose
from pipeline.data.manifest import Manifest
from pipeline.data.prepare import prepare
from pipeline.data.records import Sample


def manifest_of(sizes: list[tuple[int, int]], split: str = "train") -> Manifest:
    samples = [Sample(f"s{i}", f"s{i}.jpg", w, h, split) for i, (w, h) in enumerate(sizes)]
    return Manifest("detection", ["raccoon"], samples)


@pytest.mark.parametrize("side,expected", [(500, 224), (224, 224), (223, 160), (160, 160), (96, 160)])
def test_the_largest_size_that_does_not_upscale(side, expected):
    assert choose_input_size(side, [160, 224]) == expected


def test_auto_follows_the_median_training_image_not_the_other_splits():
    task = {"input_size": "auto", "auto_input_sizes": [160, 224, 320], "resize": "letterbox"}
    photos = manifest_of([(640, 480), (500, 375), (300, 400)])  # longer sides 640, 500, 400: median 500
    photos.samples.append(Sample("big", "big.jpg", 4000, 3000, "val"))
    assert resolve_input_size(task, photos)["input_size"] == [320, 320]
    assert resolve_input_size(task, manifest_of([(200, 150)] * 3))["input_size"] == [160, 160]
    explicit = {**task, "input_size": [96, 64]}
    assert resolve_input_size(explicit, photos) is explicit


@pytest.mark.parametrize("task,message", [
    ({"input_size": "atuo", "auto_input_sizes": [160], "resize": "letterbox"}, "neither"),
    ({"input_size": [160], "auto_input_sizes": [160], "resize": "letterbox"}, "neither"),
    ({"input_size": "auto", "auto_input_sizes": [], "resize": "letterbox"}, "auto_input_sizes"),
    ({"input_size": "auto", "auto_input_sizes": [160], "resize": "tile"}, "tiles.yaml"),
])
def test_a_wrong_input_size_is_an_error_naming_the_key(task, message):
    with pytest.raises(ValueError, match=message):
        resolve_input_size(task, manifest_of([(500, 375)]))


def test_an_unresolved_auto_cannot_build_a_pipeline():
    with pytest.raises(ValueError, match="resolved from the data by the augment stage"):
        build_pipeline(compose().augment.detector, train=False)


def test_the_augment_stage_writes_the_chosen_size(tmp_path):
    """The built-in 160 px images stay at 160 (no upscaling); a list without 160 makes them 128."""
    cfg = compose(["data=synthetic_tiny", "data.image_size=[200,160]"])
    prepare(cfg.data, 42, tmp_path / "prepared", tmp_path / "rp", tmp_path / "m.json")
    manifest = tmp_path / "prepared/manifest.json"
    for sizes, side in (([160, 224], 160), ([128, 256], 128)):
        cfg = compose(["data=synthetic_tiny", f"augment.detector.auto_input_sizes=[{sizes[0]},{sizes[1]}]"])
        summary = run_augment(cfg.augment, manifest, tmp_path / f"aug{side}", tmp_path / f"rep{side}", 42)
        assert summary["detector"]["input_size"] == [side, side]
        pad = load_pipeline(tmp_path / f"aug{side}" / "detector_eval.json").transforms[-1]  # letterbox's padding
        assert (pad.min_width, pad.min_height) == (side, side)
