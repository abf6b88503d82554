"""Splits that a dataset fixes itself are honoured (`data.split.source`): Pascal VOC's
ImageSets/Main lists, a YOLO data.yaml, train/ val/ test/ image folders, COCO files per split. With the given split no
image moves between splits; one the split leaves out is rejected with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipeline.data.manifest import Manifest
from pipeline.data.prepare import prepare
from tests.helpers import (
    data_config,
    make_truths,
    noise_image,
    write_coco,
    write_image,
    write_kitti,
    write_voc,
    write_yolo,
)

GIVEN = {"train": [0, 1, 2, 3, 4, 5], "val": [6, 7, 8], "test": [9]}  # truth index -> split


def prepared(tmp_path: Path, **cfg) -> tuple[dict, dict[str, str], dict]:
    """(stats, {sample id: split}, {rejected item: reason code})."""
    stats = prepare(data_config(**cfg), 0, tmp_path / "out", tmp_path / "reports", tmp_path / "metrics.json")
    manifest = Manifest.read(tmp_path / "out/manifest.json")
    rejected = {r["item"]: r["code"] for r in json.loads((tmp_path / "out/rejected.json").read_text())}
    return stats, {s.id: s.split for s in manifest.samples}, rejected


def expected(truths, folder: str = "images") -> dict[str, str]:
    return {f"{folder}/{truths[i].name}": split for split, ids in GIVEN.items() for i in ids}


def test_voc_image_sets_fix_the_split_and_a_name_they_leave_out_is_rejected(tmp_path):
    truths = make_truths(11)
    root = tmp_path / "voc"
    write_voc(root, truths)
    (root / "ImageSets/Main").mkdir(parents=True)
    for split, ids in GIVEN.items():
        (root / f"ImageSets/Main/{split}.txt").write_text("".join(f"{Path(truths[i].name).stem}\n" for i in ids))
    stats, splits, rejected = prepared(tmp_path / "a", format="voc", root=str(root))
    assert stats["split_source"] == "given" and splits == expected(truths)  # image 10 is listed nowhere
    assert rejected == {"images/img_10.png": "not_in_given_split"}
    stats, splits, _ = prepared(tmp_path / "b", format="voc", root=str(root), split={"source": "stratified"})
    assert stats["split_source"] == "stratified" and len(splits) == 11
    assert {name: splits[name] for name in expected(truths)} != expected(truths)


def test_a_yolo_data_yaml_fixes_the_split(tmp_path):
    truths = make_truths(10)
    root = tmp_path / "yolo"
    write_yolo(root, truths)
    lists = {split: root / f"{split}.txt" for split in GIVEN}
    for split, ids in GIVEN.items():
        lists[split].write_text("".join(f"images/{truths[i].name}\n" for i in ids))
    (root / "data.yaml").write_text(yaml.safe_dump({"path": ".", "train": "train.txt", "val": "val.txt",
                                                    "test": "test.txt", "names": ["cat", "dog", "bird"]}))
    stats, splits, rejected = prepared(tmp_path / "a", format="yolo", root=str(root))
    assert stats["split_source"] == "given" and splits == expected(truths) and not rejected


def test_train_and_val_image_folders_fix_the_split(tmp_path):
    root = tmp_path / "folders"
    layout = {"train": {"cat": 5, "dog": 4}, "valid": {"cat": 2, "dog": 2}}  # `valid` names val too
    seed = 0
    for split, classes in layout.items():
        for name, count in classes.items():
            for i in range(count):
                seed += 1
                write_image(root / split / name / f"{i}.jpg", noise_image(40, 30, seed), quality=95)
    stats, splits, rejected = prepared(tmp_path / "a", format="folders", root=str(root))
    assert stats["split_source"] == "given" and not rejected
    assert sorted(Manifest.read(tmp_path / "a/out/manifest.json").classes) == ["cat", "dog"]  # not train/valid
    assert splits == {f"{split}/{name}/{i}.jpg": "val" if split == "valid" else "train"
                      for split, classes in layout.items() for name, count in classes.items() for i in range(count)}


def test_digits_train_and_val_folders_fix_the_split(tmp_path):
    truths = make_truths(10)
    root = tmp_path / "digits"
    for split, ids in GIVEN.items():  # DIGITS' layout: train/images, train/labels, val/images, ...
        write_kitti(root / split, [truths[i] for i in ids])
    stats, splits, rejected = prepared(tmp_path / "a", format="kitti", root=str(root))
    assert stats["split_source"] == "given" and not rejected
    assert splits == {f"{split}/images/{truths[i].name}": split for split, ids in GIVEN.items() for i in ids}


def test_coco_files_per_split_fix_the_split(tmp_path):
    """Roboflow's layout: a folder per split with its images and annotation file; an image in a
    split's folder that its file does not list is rejected."""
    truths = make_truths(10)
    root = tmp_path / "coco"
    for split, ids in GIVEN.items():
        write_coco(root / split, [truths[i] for i in ids])
    write_image(root / "val/images/unlisted.png", noise_image(40, 30, 99))
    files = {split: {"annotation_file": f"{split}/annotations.json", "images_dir": f"{split}/images"}
             for split in GIVEN}
    stats, splits, rejected = prepared(tmp_path / "a", format="coco", root=str(root), split_files=files)
    assert stats["split_source"] == "given" and stats["boxes"]["count"] == sum(len(t.boxes) for t in truths)
    assert splits == {f"{split}/images/{truths[i].name}": split for split, ids in GIVEN.items() for i in ids}
    assert rejected == {"val/images/unlisted.png": "image_without_annotation"}


def test_coco_files_per_split_may_share_one_image_folder(tmp_path):
    """COCO's own layout with one folder: no image is an orphan because another split's file lists it."""
    truths = make_truths(10)
    root = tmp_path / "coco"
    for split, ids in GIVEN.items():
        write_coco(root, [truths[i] for i in ids])
        (root / "annotations.json").rename(root / f"instances_{split}.json")
    files = {split: {"annotation_file": f"instances_{split}.json", "images_dir": "images"} for split in GIVEN}
    stats, splits, rejected = prepared(tmp_path / "a", format="coco", root=str(root), split_files=files)
    assert splits == expected(truths) and not rejected


def test_coco_split_files_that_disagree_are_refused(tmp_path):
    truths = make_truths(4)
    root = tmp_path / "coco"
    write_coco(root / "train", truths[:2])
    write_coco(root / "val", truths[2:], categories=("dog", "cat", "bird"))  # id 10 is another class here
    files = {split: {"annotation_file": f"{split}/annotations.json", "images_dir": f"{split}/images"}
             for split in ("train", "val")}
    with pytest.raises(ValueError, match="val/annotations.json: category id 10 is 'dog', but 'cat' in another split"):
        prepared(tmp_path / "a", format="coco", root=str(root), split_files=files)
    with pytest.raises(ValueError, match="data.split_files: valid is not a split; use train, val, test"):
        prepared(tmp_path / "b", format="coco", root=str(root), split_files={"valid": files["val"]})


def test_given_without_a_split_in_the_dataset_is_a_clear_error(tmp_path):
    root = tmp_path / "voc"
    write_voc(root, make_truths(4))
    with pytest.raises(ValueError, match="data.split.source=given: .*ImageSets/Main has no split of its own"):
        prepared(tmp_path / "a", format="voc", root=str(root), split={"source": "given"})
