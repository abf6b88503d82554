"""Faulty annotations each end as a quarantine entry naming the file (and the annotation or line)
and the fix, or a warning in stats.json; found = accepted + rejected always; nothing good is lost."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from pipeline.config import compose
from pipeline.data.prepare import DataError
from tests.conftest import PROJECT_ROOT
from tests.helpers import add, make_truths, noise_image, prepare_voc, write_coco, write_csv, write_folders, write_image


def prepared(tmp_path: Path, root: Path, fmt: str, **policy):
    stats, manifest, rejected = prepare_voc(tmp_path, root, fmt, **policy)
    assert stats["found"] == stats["accepted"] + stats["rejected"] == len(manifest.samples) + len(rejected)
    assert stats["rejected_by_code"] == dict(Counter(r["code"] for r in rejected.values()))
    return stats, manifest, rejected


def coco(root: Path) -> dict:
    return json.loads((root / "annotations.json").read_text())


def test_coco_segmentation_without_bbox_takes_the_polygons_extent(tmp_path):
    truths = make_truths(n=3)
    write_coco(tmp_path / "src", truths)
    data = coco(tmp_path / "src")
    ann = data["annotations"][0]
    x, y, w, h = ann.pop("bbox")
    ann["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    data["annotations"].append({"id": 99, "image_id": 3, "category_id": 10, "segmentation": {"counts": "x"}})
    (tmp_path / "src/annotations.json").write_text(json.dumps(data))
    stats, manifest, rejected = prepared(tmp_path, tmp_path / "src", "coco")
    first = next(s for s in manifest.samples if s.origin == f"images/{truths[0].name}")
    assert first.boxes[0] == [round(v, 3) for v in truths[0].boxes[0]]
    (only,) = rejected.values()  # an annotation with neither: its image, with the annotation's id
    assert only["code"] == "bad_annotation" and "annotation 99 of image id 3" in only["reason"]
    assert stats["accepted"] == 2


def test_coco_images_sharing_an_id_are_rejected_by_id(tmp_path):
    truths = make_truths(n=4)
    write_coco(tmp_path / "src", truths)
    data = coco(tmp_path / "src")
    data["images"][1]["id"] = data["images"][0]["id"]
    (tmp_path / "src/annotations.json").write_text(json.dumps(data))
    stats, manifest, rejected = prepared(tmp_path, tmp_path / "src", "coco")
    by_id = {k: r for k, r in rejected.items() if r["code"] == "bad_annotation"}
    assert set(by_id) == {f"images/{truths[0].name}", f"images/{truths[1].name}"}
    assert all("image id 1 is given to 2 images" in r["reason"] for r in by_id.values())
    orphans = {k for k, r in rejected.items() if r["code"] == "annotation_without_image"}
    assert len(orphans) == len(truths[1].boxes)  # image id 2 is gone: its annotations say so
    assert stats["accepted"] == 2 and {s.origin for s in manifest.samples} == {f"images/{t.name}" for t in truths[2:]}


def test_a_coco_image_file_listed_under_two_ids_is_rejected_naming_both(tmp_path):
    truths = make_truths(n=4)
    write_coco(tmp_path / "src", truths)
    data = coco(tmp_path / "src")
    data["images"].append({**data["images"][0], "id": 77})
    data["annotations"].append({**data["annotations"][0], "id": 900, "image_id": 77})
    (tmp_path / "src/annotations.json").write_text(json.dumps(data))
    stats, manifest, rejected = prepared(tmp_path, tmp_path / "src", "coco")
    item = f"images/{truths[0].name}"
    assert set(rejected) == {item} and rejected[item]["code"] == "bad_annotation"
    assert f"{item} is listed under image ids 1, 77; list it once" in rejected[item]["reason"]
    assert stats["found"] == 4 and {s.origin for s in manifest.samples} == {f"images/{t.name}" for t in truths[1:]}


def test_coco_crowd_regions_are_ignored_and_counted(tmp_path):
    truths = make_truths(n=3)
    write_coco(tmp_path / "src", truths)
    data = coco(tmp_path / "src")
    data["annotations"][0]["iscrowd"] = 1
    (tmp_path / "src/annotations.json").write_text(json.dumps(data))
    stats, manifest, _ = prepared(tmp_path, tmp_path / "src", "coco")
    assert stats["ignored_annotations"] == 1 and stats["accepted"] == 3
    assert stats["boxes"]["count"] == sum(len(t.boxes) for t in truths) - 1


def test_csv_byte_order_mark_empty_class_and_empty_filename(tmp_path):
    truths = make_truths(n=3)
    write_csv(tmp_path / "src", truths)
    path = tmp_path / "src/annotations.csv"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace(f",{truths[0].classes[0]},", ",,")
    lines.append(",64,48,cat,1,1,9,9")
    path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    stats, manifest, rejected = prepared(tmp_path, tmp_path / "src", "csv")
    assert "" not in manifest.classes
    by_code = {r["code"]: r for r in rejected.values()}
    assert set(rejected) == {f"images/{truths[0].name}", f"annotations.csv:line {len(lines)}"}
    assert "line 2: empty class" in rejected[f"images/{truths[0].name}"]["reason"]
    assert "empty filename" in rejected[f"annotations.csv:line {len(lines)}"]["reason"]
    assert set(by_code) == {"bad_annotation"} and stats["accepted"] == 2


def test_voc_class_names_differing_in_case_are_reported_or_merged(tmp_path):
    root = tmp_path / "src"
    add(root, "a.png", noise_image(64, 48, 1), classes=["Cat"])
    add(root, "b.png", noise_image(64, 48, 2), classes=["cat"])
    add(root, "c.png", noise_image(64, 48, 3), classes=["cat"])
    stats, manifest, _ = prepared(tmp_path / "keep", root, "voc", classes=None)
    assert manifest.classes == ["Cat", "cat"]
    (warning,) = [w for w in stats["warnings"] if "differ only in case" in w]
    assert "'cat' (2x" in warning and "'Cat' (1x, e.g. annotations/a.xml)" in warning and "class_case=merge" in warning
    stats, manifest, _ = prepared(tmp_path / "merge", root, "voc", classes=None, class_case="merge")
    assert manifest.classes == ["cat"] and stats["splits"]
    assert any("merged as 'cat'" in w for w in stats["warnings"])


def test_voc_broken_xml_or_a_wrong_filename_is_reported_on_the_image(tmp_path):
    root = tmp_path / "src"
    for i in range(3):
        add(root, f"good_{i}.png", noise_image(64, 48, i))
    write_image(root / "images/broken.png", noise_image(64, 48, 7))
    (root / "annotations/broken.xml").write_text("<annotation><filename>broken.png</filename>")
    add(root, "renamed.png", noise_image(64, 48, 8))
    xml = (root / "annotations/renamed.xml").read_text()
    (root / "annotations/renamed.xml").write_text(xml.replace("<filename>renamed.png", "<filename>IMG_0001.png"))
    stats, manifest, rejected = prepared(tmp_path, root, "voc")
    assert list(rejected) == ["images/broken.png"]  # once, on the image, with the real reason
    assert "annotations/broken.xml: not well-formed XML" in rejected["images/broken.png"]["reason"]
    assert "images/renamed.png" in {s.origin for s in manifest.samples}
    assert any("annotations/renamed.xml: <filename> 'IMG_0001.png' names no image; paired with images/renamed.png"
               in w for w in stats["warnings"])


def test_image_folders_root_image_and_empty_class_folder(tmp_path):
    root = tmp_path / "src"
    write_folders(root, {"cat": 3, "dog": 3})
    (root / "bird").mkdir()
    write_image(root / "stray.png", noise_image(32, 32, 99))
    stats, manifest, rejected = prepared(tmp_path, root, "folders")
    assert rejected["stray.png"]["code"] == "no_class_folder" and "move it into" in rejected["stray.png"]["reason"]
    assert manifest.classes == ["cat", "dog"] and stats["found"] == 7
    assert any("bird: empty class folder; class 'bird' is left out" in w for w in stats["warnings"])


# The training stage as DVC runs it, saying at its exit whether it imported torch.
REPORT_TORCH = ("import atexit, runpy, sys; atexit.register(lambda: print('torch imported:', 'torch' in sys.modules)); "
                "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def train_stage_reporting_torch(tiny_data, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", REPORT_TORCH, "stages/train.py", "classifier", "--params",
                           str(tmp_path / "params.yaml"), "--manifest", str(tiny_data / "prepared/manifest.json"),
                           "--pipelines", str(tiny_data / "augment"), "--out", str(tmp_path / "model")],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)


def test_an_unreachable_tracking_server_is_one_line_before_any_work(tiny_data, tmp_path):
    cfg = compose(["data=synthetic_tiny", "logger.tracking_uri=http://127.0.0.1:9"])
    OmegaConf.save(cfg, tmp_path / "params.yaml")
    start = time.monotonic()
    done = train_stage_reporting_torch(tiny_data, tmp_path)
    assert time.monotonic() - start < 60  # no minutes of retries (the check itself: the next test)
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        "error: MLflow tracking server http://127.0.0.1:9 is not reachable ([Errno 111] Connection refused); start "
        "it, or unset logger.tracking_uri and $MLFLOW_TRACKING_URI to log to the project's local store"]
    assert done.stdout.splitlines()[-1] == "torch imported: False"  # refused before the deep-learning imports
    assert list(tmp_path.iterdir()) == [tmp_path / "params.yaml"]  # no model, no work folder


def test_a_server_that_accepts_but_never_answers_is_refused_within_ten_seconds():
    import socket

    import pytest

    from pipeline.tracking import check_reachable

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections queue, nothing ever answers
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(ValueError, match=f"MLflow tracking server {uri} is not reachable .*timed out"):
            check_reachable(uri)
        assert time.monotonic() - start < 10


def test_a_damaged_tracking_store_is_one_line_before_any_work(tiny_data, tmp_path):
    store = tmp_path / "mlruns/mlflow.db"
    store.parent.mkdir()
    store.write_bytes(b"SQLite format 3\x00" + bytes(84) + b"not the rest of a database" * 200)
    cfg = compose(["data=synthetic_tiny", f"logger.local_store={store}"])
    OmegaConf.save(cfg, tmp_path / "params.yaml")
    done = train_stage_reporting_torch(tiny_data, tmp_path)
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        f"error: MLflow store {store} is damaged (file is not a database); move it aside and start a new one there "
        "(or set logger.local_store): its runs are lost unless you have a copy"]
    assert done.stdout.splitlines()[-1] == "torch imported: False"
    assert not (tmp_path / "model").exists()


def test_tracking_stores_that_cannot_take_a_run_are_named_in_one_line(tmp_path, monkeypatch):
    import http.server
    import sqlite3
    import threading

    from pipeline.tracking import check_reachable, tracking_uri

    class NotMlflow(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotMlflow)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ValueError, match=r"answers, but not as an MLflow tracking server \(GET "
                                             r"/api/2.0/mlflow/experiments/get-by-name: HTTP 404\)"):
            check_reachable(f"http://127.0.0.1:{web.server_address[1]}")
    finally:
        web.shutdown()
    for folder in (str(tmp_path), f"file://{tmp_path}"):
        with pytest.raises(ValueError, match=rf"is a folder .*logger.tracking_uri=sqlite:///{tmp_path}/mlflow.db$"):
            check_reachable(folder)
    (tmp_path / "file").write_text("")
    uri = tracking_uri(OmegaConf.create({"tracking_uri": None, "local_store": str(tmp_path / "file/mlflow.db")}))
    with pytest.raises(ValueError, match=r"its folder .*/file cannot be written; set logger.local_store"):
        check_reachable(uri)
    monkeypatch.setattr("os.access", lambda path, mode: False)  # a read-only folder (the tests may run as root)
    with pytest.raises(ValueError, match=rf"its folder {tmp_path} cannot be written"):
        check_reachable(f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.undo()
    good = tmp_path / "good.db"
    with sqlite3.connect(good) as db:
        db.execute("create table runs (id integer)")
    check_reachable(f"sqlite:///{good}")  # a whole database passes


def test_one_class_to_classify_is_refused_before_any_work(tmp_path):
    root = tmp_path / "src"
    write_folders(root, {"dolphin": 3})
    with pytest.raises(DataError, match=r"one class \('dolphin'\); a classifier needs two or more: add a folder"):
        prepared(tmp_path, root, "folders")
    assert not (tmp_path / "out").exists()


def test_a_listed_class_without_any_sample_is_refused_by_name(tmp_path):
    root = tmp_path / "src"
    write_folders(root, {"cat": 3, "dog": 3})
    with pytest.raises(DataError, match=r"no accepted sample of class 'whale'; remove it from data.classes"):
        prepared(tmp_path, root, "folders", classes=["cat", "dog", "whale"])
    assert not (tmp_path / "out").exists()  # no manifest of a class the model could never learn
