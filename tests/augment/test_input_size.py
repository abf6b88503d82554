"""`augment.<section>.input_size: auto`: the largest listed size that does not upscale the median
training image (the smallest for a classifier's patches), chosen by the augment stage and written
into the pipelines."""

from __future__ import annotations

import pytest

from pipeline.augment.build import build_pipeline, load_pipeline
from pipeline.augment.input_size import choose_input_size, resolve_input_size
from pipeline.augment.stage import run_augment
from pipeline.config import compose
from pipeline.data.manifest import Manifest
from pipeline.data.prepare import prepare
from pipeline.data.records import Sample
from tests.helpers import data_config, write_folders


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
    chosen, why = resolve_input_size(task, photos, "detector")
    assert chosen["input_size"] == [320, 320] and why == "auto: training images' median longer side 500 px"
    assert resolve_input_size(task, manifest_of([(200, 150)] * 3), "detector")[0]["input_size"] == [160, 160]
    explicit = {**task, "input_size": [96, 64]}
    assert resolve_input_size(explicit, photos, "detector") == (explicit, "set")


def test_patches_keep_the_smallest_size_whatever_the_photos():
    task = {"input_size": "auto", "auto_input_sizes": [128, 64, 224], "resize": "stretch"}
    photos = manifest_of([(640, 480)] * 3)
    assert resolve_input_size(task, photos, "classifier")[0]["input_size"] == [224, 224]
    assert resolve_input_size(task, photos, "classifier", patches=True)[0]["input_size"] == [64, 64]


@pytest.mark.parametrize("task,message", [
    ({"input_size": "atuo", "auto_input_sizes": [160], "resize": "letterbox"},
     r"^augment.multilabel.input_size: 'atuo' is neither"),
    ({"input_size": [160], "auto_input_sizes": [160], "resize": "letterbox"}, "neither"),
    ({"input_size": "auto", "auto_input_sizes": [], "resize": "letterbox"}, "augment.multilabel.auto_input_sizes"),
    ({"input_size": "auto", "auto_input_sizes": [160], "resize": "tile"}, "tiles.yaml"),
])
def test_a_wrong_input_size_is_an_error_naming_the_key(task, message):
    with pytest.raises(ValueError, match=message):
        resolve_input_size(task, manifest_of([(500, 375)]), "multilabel")


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
        # the classifier sees patches of these images, the multi-label model whole 200 px images
        assert summary["classifier"]["input_size"] == [64, 64] and summary["multilabel"]["input_size"] == [128, 128]
        pad = load_pipeline(tmp_path / f"aug{side}" / "detector_eval.json").transforms[-1]  # letterbox's padding
        assert (pad.min_width, pad.min_height) == (side, side)


def test_photos_give_the_classifier_the_size_its_backbone_was_made_for(tmp_path):
    """Whole 300 px photos (classification folders): the classifier and the multi-label model get 224."""
    write_folders(tmp_path / "raw", {"cat": 3, "dog": 3}, size=(300, 240))
    data = data_config(name="f", format="folders", root=str(tmp_path / "raw"))
    prepare(data, 1, tmp_path / "prepared", tmp_path / "rp", tmp_path / "m.json")
    summary = run_augment(compose().augment, tmp_path / "prepared/manifest.json", tmp_path / "aug", tmp_path / "rep", 1)
    assert summary["classifier"]["input_size"] == [224, 224] and summary["multilabel"]["input_size"] == [224, 224]
    assert summary["classifier"]["sized_by"] == "auto: training images' median longer side 300 px"
    resize = load_pipeline(tmp_path / "aug/classifier_eval.json").transforms[-1]
    assert (resize.width, resize.height) == (224, 224)
