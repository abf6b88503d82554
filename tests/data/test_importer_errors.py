"""Every importer's error paths: a faulty annotation quarantines its image (or only itself) with a
code and a reason naming the file and line or id, the good images beside it are all kept; a file
the whole import depends on is one clear error before any work."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from pipeline.data.prepare import prepare
from tests.data.test_importer_faults import prepared
from tests.helpers import WRITERS, data_config, make_truths, prepare_voc

N = 4  # images in each dataset; the first one (img_00) is made faulty


def dataset(tmp_path: Path, fmt: str, change) -> Path:
    """A dataset of N images in ``fmt``, then ``change`` applied to its folder."""
    root = tmp_path / "src"
    WRITERS[fmt](root, make_truths(n=N))
    change(root)
    return root


def replace_line(path: Path, line: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[line] = text
    path.write_text("\n".join(lines) + "\n")


def edit_coco(root: Path, change) -> None:
    data = json.loads((root / "annotations.json").read_text())
    change(data)
    (root / "annotations.json").write_text(json.dumps(data))


def coco_orphan(data):
    data["annotations"].append({**data["annotations"][0], "id": 500, "image_id": 77})


def coco_unknown_category(data):
    first = next(a for a in data["annotations"] if a["image_id"] == 1)
    first["category_id"] = 99


def coco_unlisted(data):
    data["images"].pop(0)
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != 1]


def coco_size(data):
    data["images"][0]["width"] += 7


def csv_size(root: Path, rows: str = "all") -> None:
    """img_00's declared width 7 px wider: on all its rows, or on one extra row only."""
    lines = (root / "annotations.csv").read_text().splitlines()
    out = [lines[0]]
    for line in lines[1:]:
        fields = line.split(",")
        wider = ",".join([fields[0], str(int(fields[1]) + 7), *fields[2:]])
        if fields[0] == "img_00.png":
            out += [wider] if rows == "all" else [line, wider]
        else:
            out.append(line)
    (root / "annotations.csv").write_text("\n".join(out) + "\n")


def voc_without_bndbox(root: Path) -> None:
    path = root / "annotations/img_00.xml"
    path.write_text(re.sub(r"<bndbox>.*?</bndbox>", "", path.read_text(), count=1))


# (format, corruption of the written dataset, item quarantined, code, words its reason must hold)
REJECTIONS = {
    "voc missing bndbox": ("voc", voc_without_bndbox, "images/img_00.png", "bad_annotation",
                           ["annotations/img_00.xml", "object 0", "missing <bndbox>"]),
    "kitti field count": ("kitti", lambda r: replace_line(r / "labels/img_00.txt", 0, "cat 0 0 0 1 2 3 4 5 6"),
                          "images/img_00.png", "bad_annotation", ["labels/img_00.txt line 1", "expected 15 or 16",
                                                                  "got 10"]),
    "kitti corners": ("kitti", lambda r: replace_line(r / "labels/img_00.txt", 0,
                                                      "cat 0 0 0 a 1 5 5 0 0 0 0 0 0 0"),
                      "images/img_00.png", "bad_annotation", ["labels/img_00.txt line 1", "not numbers"]),
    "yolo field count": ("yolo", lambda r: replace_line(r / "labels/img_00.txt", 0, "0 0.5 0.5 0.2"),
                         "images/img_00.png", "bad_annotation",
                         ["labels/img_00.txt line 1", "expected 5 fields, got 4"]),
    "yolo class id": ("yolo", lambda r: replace_line(r / "labels/img_00.txt", 0, "7 0.5 0.5 0.2 0.2"),
                      "images/img_00.png", "unknown_class", ["<class id 7>"]),
    "yolo label without image": ("yolo", lambda r: (r / "labels/lost.txt").write_text("0 0.5 0.5 0.2 0.2\n"),
                                 "labels/lost.txt", "annotation_without_image", ["no image of the same name"]),
    "yolo image without label": ("yolo", lambda r: (r / "labels/img_00.txt").unlink(), "images/img_00.png",
                                 "image_without_annotation", ["labels/img_00.txt", "data.allow_unannotated=true"]),
    "kitti image without label": ("kitti", lambda r: (r / "labels/img_00.txt").unlink(), "images/img_00.png",
                                  "image_without_annotation", ["labels/img_00.txt"]),
    "coco orphan annotation": ("coco", lambda r: edit_coco(r, coco_orphan), "annotations.json#annotation-500",
                               "annotation_without_image", ["annotation 500", "image id 77"]),
    "coco unknown category": ("coco", lambda r: edit_coco(r, coco_unknown_category), "images/img_00.png",
                              "unknown_class", ["<category id 99>"]),
    "coco size mismatch": ("coco", lambda r: edit_coco(r, coco_size), "images/img_00.png", "size_mismatch",
                           ["annotations.json", "declares image size"]),
    "coco image not listed": ("coco", lambda r: edit_coco(r, coco_unlisted), "images/img_00.png",
                              "image_without_annotation", ["not listed in annotations.json"]),
    "csv size mismatch": ("csv", csv_size, "images/img_00.png", "size_mismatch", ["annotations.csv",
                                                                                 "declares image size"]),
    "csv rows disagree on size": ("csv", lambda r: csv_size(r, "one"), "images/img_00.png", "bad_annotation",
                                  ["annotations.csv line", "img_00.png is declared", "on an earlier row"]),
    "csv non-numeric": ("csv", lambda r: replace_line(r / "annotations.csv", 1, "img_00.png,x,50,cat,1,1,9,9"),
                        "images/img_00.png", "bad_annotation", ["annotations.csv line 2", "non-numeric"]),
}


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_a_faulty_annotation_quarantines_only_its_image(tmp_path, case):
    fmt, corrupt, item, code, words = REJECTIONS[case]
    root = dataset(tmp_path, fmt, corrupt)
    policy = {"classes": ["cat", "dog", "bird"]} if fmt == "voc" else {}
    stats, manifest, rejected = prepared(tmp_path, root, fmt, **policy)
    assert set(rejected) == {item}, rejected
    assert rejected[item]["code"] == code
    for word in words:
        assert word in rejected[item]["reason"], rejected[item]["reason"]
    kept = {s.origin for s in manifest.samples}
    expected = {f"images/img_{i:02d}.png" for i in range(N)} - {item}
    assert kept == expected  # every good image survives


ALLOWED = {"yolo": "labels/img_00.txt", "kitti": "labels/img_00.txt"}


@pytest.mark.parametrize("fmt", ["yolo", "kitti", "coco", "csv"])
def test_allow_unannotated_keeps_an_image_without_annotation_as_background(tmp_path, fmt):
    root = tmp_path / "src"
    truths = make_truths(n=N)
    WRITERS[fmt](root, truths)
    if fmt in ALLOWED:
        (root / ALLOWED[fmt]).unlink()
    elif fmt == "coco":
        edit_coco(root, coco_unlisted)
    else:
        lines = (root / "annotations.csv").read_text().splitlines()
        (root / "annotations.csv").write_text("\n".join(row for row in lines if not row.startswith("img_00")) + "\n")
    stats, manifest, rejected = prepared(tmp_path, root, fmt, allow_unannotated=True)
    assert not rejected and stats["accepted"] == N
    background = next(s for s in manifest.samples if s.origin == "images/img_00.png")
    assert background.boxes == []


# A file the whole import needs: (format, change, exception, words of its one message)
FATAL = {
    "yolo names file missing": ("yolo", lambda r: (r / "classes.txt").unlink(), {}, FileNotFoundError,
                                ["classes.txt", "class-names file not found"]),
    "yolo data.yaml without names": ("yolo", lambda r: (r / "data.yaml").write_text(yaml.safe_dump({"nc": 3})),
                                     {"names_file": "data.yaml"}, ValueError, ["data.yaml", "'names' list or mapping"]),
    "csv missing columns": ("csv", lambda r: (r / "annotations.csv").write_text("filename,width,height,xmin\n"), {},
                            ValueError, ["annotations.csv", "missing columns", "'class'"]),
    "csv file missing": ("csv", lambda r: (r / "annotations.csv").unlink(), {}, FileNotFoundError,
                         ["annotations.csv", "annotation file not found"]),
    "coco bad json": ("coco", lambda r: (r / "annotations.json").write_text('{"images": [,]}'), {}, ValueError,
                      ["annotations.json", "cannot read COCO annotations"]),
    "coco without categories": ("coco", lambda r: edit_coco(r, lambda d: d.pop("categories")), {}, ValueError,
                                ["annotations.json", "'categories'"]),
}


@pytest.mark.parametrize("case", sorted(FATAL))
def test_a_file_the_import_needs_is_one_clear_error_before_any_work(tmp_path, case):
    fmt, change, policy, error, words = FATAL[case]
    root = dataset(tmp_path, fmt, change)
    with pytest.raises(error) as info:
        prepare_voc(tmp_path, root, fmt, **policy)
    message = str(info.value.args[0])
    assert "\n" not in message
    for word in words:
        assert word in message, message
    assert not (tmp_path / "out").exists()  # nothing was written


def test_multilabel_csv_label_sets_and_each_faulty_row(tmp_path):
    """Labels are a set per image (sorted, repeats dropped, an empty cell is none); an image listed
    twice, a row without a filename, a listed image that is missing and an image not listed are
    each quarantined with its line or file; the others are kept with their labels."""
    from pipeline.data.manifest import Manifest
    from tests.helpers import write_images

    root = tmp_path / "src"
    truths = make_truths(n=6)
    write_images(root, truths)
    rows = ["img_00.png,dog cat dog", "img_01.png,", "img_02.png,bird", "img_02.png,cat", ",cat", "gone.png,dog",
            "img_03.png,cat bird", "img_04.png, dog "]
    (root / "labels.csv").write_text("filename,labels\n" + "\n".join(rows) + "\n")  # img_05 is not listed
    cfg = data_config(format="multilabel_csv", root=str(root), images_dir="images", annotation_file="labels.csv")
    stats = prepare(cfg, 0, tmp_path / "out", tmp_path / "r", tmp_path / "m.json")
    manifest = Manifest.read(tmp_path / "out/manifest.json")
    rejected = {r["item"]: r for r in json.loads((tmp_path / "out/rejected.json").read_text())}
    assert stats["found"] == stats["accepted"] + stats["rejected"] == 8
    assert manifest.classes == ["bird", "cat", "dog"]
    labels = {s.origin: [manifest.classes[c] for c in s.labels] for s in manifest.samples}
    assert labels == {"images/img_00.png": ["cat", "dog"], "images/img_01.png": [],
                      "images/img_03.png": ["bird", "cat"], "images/img_04.png": ["dog"]}
    assert rejected["images/img_02.png"]["code"] == "bad_annotation"
    assert "labels.csv line 5: img_02.png is listed twice" in rejected["images/img_02.png"]["reason"]
    assert rejected["labels.csv:line 6"]["code"] == "bad_annotation"
    assert "empty filename" in rejected["labels.csv:line 6"]["reason"]
    assert rejected["images/gone.png"]["code"] == "annotation_without_image"
    assert rejected["images/img_05.png"]["code"] == "image_without_annotation"


def test_multilabel_csv_separator_is_a_setting_and_a_label_holding_another_is_refused(tmp_path):
    from pipeline.data.manifest import Manifest
    from tests.helpers import write_images

    root = tmp_path / "src"
    write_images(root, make_truths(n=3))
    (root / "labels.csv").write_text("filename,labels\nimg_00.png,dog;cat\nimg_01.png,bird\nimg_02.png, cat ; bird\n")
    cfg = data_config(format="multilabel_csv", root=str(root), images_dir="images", annotation_file="labels.csv")
    with pytest.raises(ValueError, match=r"labels.csv line 2: label 'dog;cat' holds ';' while labels are separated "
                                         r"by a space; if ';' separates the labels, set data.label_separator=';'"):
        prepare(cfg, 0, tmp_path / "out", tmp_path / "r", tmp_path / "m.json")
    assert not (tmp_path / "out").exists()
    cfg.label_separator = ";"
    prepare(cfg, 0, tmp_path / "out", tmp_path / "r", tmp_path / "m.json")
    manifest = Manifest.read(tmp_path / "out/manifest.json")
    assert manifest.classes == ["bird", "cat", "dog"]
    labels = {s.origin: [manifest.classes[c] for c in s.labels] for s in manifest.samples}
    assert labels == {"images/img_00.png": ["cat", "dog"], "images/img_01.png": ["bird"],
                      "images/img_02.png": ["bird", "cat"]}
