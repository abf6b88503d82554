"""The augment stage on a detection dataset (synthetic) and a classification one (folders)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.augment.build import load_pipeline
from pipeline.augment.stage import run_augment
from pipeline.config import compose
from pipeline.data.patches import crop, patch_windows
from pipeline.data.prepare import prepare
from tests.helpers import data_config, write_folders


def test_stage_writes_pipelines_and_previews_for_detection(tmp_path):
    cfg = compose(["data=synthetic_tiny"])
    prepare(cfg.data, 42, tmp_path / "prepared", tmp_path / "rp", tmp_path / "m.json")
    summary = run_augment(cfg.augment, tmp_path / "prepared/manifest.json", tmp_path / "aug", tmp_path / "rep", 42)
    for task in ("classifier", "detector"):
        for mode in ("train", "eval"):
            assert load_pipeline(tmp_path / "aug" / f"{task}_{mode}.json").transforms
        preview = Image.open(tmp_path / "rep" / f"{task}_preview.png")
        assert preview.width > 600 and preview.height > 300
    assert summary["detector"]["eval"] == ["LongestMaxSize", "PadIfNeeded"]
    assert "BBoxSafeRandomCrop" in summary["detector"]["train"]


def test_stage_on_classification_data_previews_whole_images(tmp_path):
    write_folders(tmp_path / "raw", {"cat": 4, "dog": 4})
    data = data_config(name="f", format="folders", root=str(tmp_path / "raw"))
    prepare(data, 1, tmp_path / "prepared", tmp_path / "rp", tmp_path / "m.json")
    run_augment(compose().augment, tmp_path / "prepared/manifest.json", tmp_path / "aug", tmp_path / "rep", 1)
    assert (tmp_path / "rep/classifier_preview.png").is_file()
    assert not (tmp_path / "rep/detector_preview.png").exists()  # no boxes to draw
    assert (tmp_path / "aug/detector_train.json").is_file()


def test_patch_view_cuts_objects_and_clean_background():
    from pipeline.data.records import Sample

    sample = Sample("a", "a.png", 100, 80, boxes=[[10, 10, 30, 40], [60, 20, 90, 50]], box_labels=[1, 0])
    patches = patch_windows([sample], num_classes=2, background_per_image=2, seed=0)
    objects = [p for p in patches if p.label != 2]
    assert [p.label for p in objects] == [1, 0]
    x1, y1, x2, y2 = objects[0].box
    assert np.isclose(x2 - x1, y2 - y1) and x1 < 10 and x2 > 30  # square with context around the box
    backgrounds = [p for p in patches if p.label == 2]
    assert len(backgrounds) == 2
    # background patches hold at most 10 % (the default max_background_overlap) of any box, over many draws
    many = [p for seed in range(20) for p in patch_windows([sample], 2, background_per_image=3, seed=seed)
            if p.label == 2]
    assert len(many) >= 40
    for patch in many:
        px1, py1, px2, py2 = patch.box
        for bx1, by1, bx2, by2 in sample.boxes:
            inside = max(0, min(px2, bx2) - max(px1, bx1)) * max(0, min(py2, by2) - max(py1, by1))
            assert inside <= 0.1 * (bx2 - bx1) * (by2 - by1) + 1e-6, (patch.box, (bx1, by1, bx2, by2))
    image = np.zeros((80, 100, 3), np.uint8)
    assert crop(image, (-5, -5, 15, 15)).shape == (20, 20, 3)
    assert crop(image, (-5, -5, 15, 15))[0, 0].tolist() == [114, 114, 114]  # padding outside the image
