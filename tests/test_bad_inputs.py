"""Hostile and broken inputs, one test per kind, end to end through `prepare` and, for image
files, `predict`: each ends as a clear error or a quarantine entry (rejected.json) with its
reason; the counts reconcile and the good samples beside it are all kept."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from pipeline.config import compose
from pipeline.data.records import Record
from pipeline.data.validate import Policy, validate
from pipeline.predict.cli import main as predict_main
from tests.conftest import PROJECT_ROOT
from tests.helpers import Truth, add, noise_image, prepare_voc, write_image, write_yolo
from tests.io.test_images import cmyk_reference

GOOD = [f"images/good_{i}.png" for i in range(4)]


@pytest.fixture
def root(tmp_path) -> Path:
    """A VOC dataset of four good images, to which each test adds one bad input."""
    root = tmp_path / "src"
    for i in range(4):
        add(root, f"good_{i}.png", noise_image(64, 48, i))
    return root


def prepared(tmp_path: Path, root: Path, fmt: str = "voc", **policy):
    """prepare's stats, manifest and quarantine, after checking that nothing was lost."""
    stats, manifest, rejected = prepare_voc(tmp_path, root, fmt, **policy)
    ids = {s.id for s in manifest.samples}
    assert stats["found"] == stats["accepted"] + stats["rejected"] == len(ids) + len(rejected)
    assert stats["rejected_by_code"] == dict(Counter(r["code"] for r in rejected.values()))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (metrics["images"], metrics["rejected"]) == (len(ids), len(rejected))
    if fmt == "voc":
        assert set(GOOD) <= ids  # nothing else is lost
    return stats, manifest, rejected


def quarantined(tmp_path: Path, root: Path, item: str, code: str, fmt: str = "voc", **policy) -> str:
    """prepare rejects ``item`` alone, with ``code`` and a reason naming its file; returns the reason."""
    stats, manifest, rejected = prepared(tmp_path, root, fmt, **policy)
    assert {k: r["code"] for k, r in rejected.items()} == {item: code}
    reason = rejected[item]["reason"]
    assert Path(item.split(":")[-1]).name in reason, reason
    assert stats["accepted"] == len(manifest.samples) and item not in {s.id for s in manifest.samples}
    return reason


def predict(bundles: Path, capsys, *inputs: Path) -> tuple[int, dict, str]:
    """`predict` with the tiny classifier bundle: (exit status, {path: probabilities}, stderr)."""
    out = inputs[0].parent / "predictions.json"
    status = predict_main([str(bundles / "classifier"), *map(str, inputs), "--json", str(out), "--quiet"])
    err = capsys.readouterr().err
    return status, json.loads(out.read_text()) if out.is_file() else {}, err


def predict_refuses(bundles: Path, capsys, bad: Path, message: str) -> None:
    """In a folder with one good image, ``bad`` is reported by name and skipped, the status is 1."""
    folder = bad.parents[2] / "to_predict"
    folder.mkdir()
    shutil.copyfile(bad, folder / bad.name)
    write_image(folder / "zz_good.png", noise_image(64, 48, 99))
    status, probabilities, err = predict(bundles, capsys, folder)
    assert status == 1 and f"{folder / bad.name}: " in err and message in err, err
    assert list(probabilities) == [str(folder / "zz_good.png")]
    assert "1 of 2 images could not be read" in err


def predict_sees_prepared_pixels(bundles: Path, capsys, original: Path, manifest, sample_id: str) -> None:
    """predict reads ``original`` as prepare stored it for training: the same probabilities."""
    stored = manifest.path_of(next(s for s in manifest.samples if s.id == sample_id))
    status, probabilities, _ = predict(bundles, capsys, original, stored)
    assert status == 0 and len(probabilities) == 2
    np.testing.assert_array_equal(list(probabilities[str(original)].values()),
                                  list(probabilities[str(stored)].values()))


def stored_pixels(manifest, sample_id: str) -> np.ndarray:
    with Image.open(manifest.path_of(next(s for s in manifest.samples if s.id == sample_id))) as img:
        assert img.mode == "RGB"
        return np.asarray(img)


# --- image files --------------------------------------------------------------------------------

def test_truncated_jpeg(tmp_path, root, bundles, capsys):
    bad = write_image(root / "images" / "truncated.jpg", noise_image(64, 48, 20), quality=95)
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    add(root, "truncated.jpg", size=(64, 48))
    reason = quarantined(tmp_path, root, "images/truncated.jpg", "undecodable_image")
    assert "cannot decode" in reason and "replace or remove the file" in reason
    predict_refuses(bundles, capsys, bad, "cannot decode")


def test_file_that_is_not_an_image(tmp_path, root, bundles, capsys):
    bad = root / "images" / "notes.jpg"
    bad.write_text("a text file with an image's name")
    add(root, "notes.jpg", size=(64, 48))
    assert "cannot decode" in quarantined(tmp_path, root, "images/notes.jpg", "undecodable_image")
    predict_refuses(bundles, capsys, bad, "cannot decode")


def test_cmyk_jpeg(tmp_path, root, bundles, capsys):
    Image.fromarray(noise_image(64, 48, 21)).convert("CMYK").save(root / "images" / "cmyk.jpg", quality=95)
    add(root, "cmyk.jpg", size=(64, 48))
    stats, manifest, rejected = prepared(tmp_path, root)
    assert not rejected and stats["converted_modes"] == {"CMYK": 1}
    with Image.open(root / "images" / "cmyk.jpg") as img:  # the file's own CMYK values, converted by hand
        reference = cmyk_reference(np.asarray(img))
    assert np.abs(stored_pixels(manifest, "images/cmyk.jpg").astype(int) - reference).max() <= 1
    predict_sees_prepared_pixels(bundles, capsys, root / "images" / "cmyk.jpg", manifest, "images/cmyk.jpg")


def test_16_bit_png(tmp_path, root, bundles, capsys):
    deep = (np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)
    Image.fromarray(deep).save(root / "images" / "deep.png")
    add(root, "deep.png", size=(64, 48))
    stats, manifest, rejected = prepared(tmp_path, root)
    assert not rejected and sum(stats["converted_modes"].values()) == 1
    pixels = stored_pixels(manifest, "images/deep.png")
    np.testing.assert_array_equal(pixels, np.repeat(np.rint(deep / 257).astype(np.uint8)[..., None], 3, axis=2))
    predict_sees_prepared_pixels(bundles, capsys, root / "images" / "deep.png", manifest, "images/deep.png")


def test_grayscale(tmp_path, root, bundles, capsys):
    gray = noise_image(64, 48, 22)[..., 0]
    add(root, "gray.png", gray)
    stats, manifest, rejected = prepared(tmp_path, root)
    assert not rejected and stats["converted_modes"] == {"L": 1}
    np.testing.assert_array_equal(stored_pixels(manifest, "images/gray.png"), np.stack([gray] * 3, axis=2))
    predict_sees_prepared_pixels(bundles, capsys, root / "images" / "gray.png", manifest, "images/gray.png")


def test_rgba(tmp_path, root, bundles, capsys):
    rgb = noise_image(64, 48, 23)
    rgba = np.concatenate([rgb, np.full((48, 64, 1), 40, np.uint8)], axis=2)  # mostly transparent
    add(root, "rgba.png", rgba)
    stats, manifest, rejected = prepared(tmp_path, root)
    assert not rejected and stats["converted_modes"] == {"RGBA": 1}
    np.testing.assert_array_equal(stored_pixels(manifest, "images/rgba.png"), rgb)  # alpha dropped, colours kept
    predict_sees_prepared_pixels(bundles, capsys, root / "images" / "rgba.png", manifest, "images/rgba.png")


def test_exif_rotated_image_with_boxes(tmp_path, root, bundles, capsys):
    stored = np.zeros((40, 80, 3), np.uint8)
    stored[5:15, 50:70] = (255, 0, 0)  # a red object at [50, 5, 70, 15] in the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    write_image(root / "images" / "rotated.jpg", stored, quality=98, exif=exif.tobytes())
    add(root, "rotated.jpg", boxes=[(51, 6, 70, 15)], size=(80, 40))  # drawn on the stored pixels
    stats, manifest, rejected = prepared(tmp_path, root)
    assert not rejected and stats["exif_rotated"] == 1
    sample = next(s for s in manifest.samples if s.id == "images/rotated.jpg")
    assert (sample.width, sample.height) == (40, 80)
    shown = stored_pixels(manifest, sample.id)
    ys, xs = np.nonzero(shown[..., 0] > 128)
    np.testing.assert_allclose(sample.boxes[0], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], atol=1)
    predict_sees_prepared_pixels(bundles, capsys, root / "images" / "rotated.jpg", manifest, sample.id)


def test_decompression_bomb(tmp_path, root, bundles, capsys):
    """A 196-megapixel PNG of 24 kB: refused under Pillow's own limit, before it is decoded."""
    bomb = root / "images" / "bomb.png"
    Image.new("1", (14000, 14000)).save(bomb)
    assert bomb.stat().st_size < 100_000
    add(root, "bomb.png", size=(14000, 14000))
    reason = quarantined(tmp_path, root, "images/bomb.png", "decompression_bomb")
    assert "possible decompression bomb" in reason and "data.max_image_pixels" in reason
    predict_refuses(bundles, capsys, bomb, "decompression bomb")


# --- annotations --------------------------------------------------------------------------------

def test_box_outside_the_image(tmp_path, root):
    add(root, "outside.png", noise_image(64, 48, 30), boxes=[(1, 1, 90, 30)])
    reason = quarantined(tmp_path, root, "images/outside.png", "box_outside_image")
    assert "outside the 64x48 image" in reason and "clip_tolerance" in reason


def test_zero_area_box(tmp_path, root):
    add(root, "flat.png", noise_image(64, 48, 31), boxes=[(11, 11, 10, 30)])  # VOC is 1-based: xmin-1 == xmax
    assert "zero area" in quarantined(tmp_path, root, "images/flat.png", "zero_area_box")


def test_inverted_box(tmp_path, root):
    add(root, "inverted.png", noise_image(64, 48, 32), boxes=[(30, 11, 10, 30)])
    assert "inverted" in quarantined(tmp_path, root, "images/inverted.png", "inverted_box")


def test_unknown_class(tmp_path, root):
    add(root, "zebra.png", noise_image(64, 48, 33), classes=["zebra"])
    reason = quarantined(tmp_path, root, "images/zebra.png", "unknown_class", classes=["cat"])
    assert "'zebra'" in reason and "data.classes" in reason


def yolo_dataset(root: Path) -> Path:
    write_yolo(root, [Truth(f"img_{i}.png", 64, 48, [[10.0, 10.0, 30.0, 30.0]], ["cat"]) for i in range(4)])
    return root


def test_missing_label_file(tmp_path):
    root = yolo_dataset(tmp_path / "src")
    (root / "labels" / "img_2.txt").unlink()
    reason = quarantined(tmp_path, root, "images/img_2.png", "image_without_annotation", fmt="yolo")
    assert "data.allow_unannotated=true" in reason


def test_label_file_without_image(tmp_path):
    root = yolo_dataset(tmp_path / "src")
    (root / "images" / "img_1.png").unlink()
    stats, manifest, rejected = prepared(tmp_path, root, fmt="yolo")
    assert [r["code"] for r in rejected.values()] == ["annotation_without_image"]
    assert "img_1" in next(iter(rejected.values()))["reason"] and stats["accepted"] == 3


@pytest.mark.parametrize("name", ["../../secret.png", "/etc/hostname", "images/../../secret.png"])
def test_annotation_filename_with_path_traversal(tmp_path, root, name):
    write_image(tmp_path / "secret.png", noise_image(64, 48, 34))  # exists, outside the dataset
    (root / "annotations" / "escape.xml").write_text(
        (root / "annotations" / "good_0.xml").read_text().replace("good_0.png", name))
    reason = quarantined(tmp_path, root, f"annotations/escape.xml:{name}", "path_traversal")
    assert "escapes the dataset folder" in reason
    stored = {p.name for p in (tmp_path / "out" / "images").rglob("*")}
    assert "secret.png" not in stored and "hostname" not in stored


def test_empty_dataset(tmp_path, bundles, capsys):
    """The prepare stage exits with an error naming the folder and the layout it expected."""
    (tmp_path / "src" / "images").mkdir(parents=True)
    (tmp_path / "src" / "annotations").mkdir()
    cfg = compose(["data=raccoon", f"data.root={tmp_path / 'src'}"])
    OmegaConf.save(cfg, tmp_path / "params.yaml")
    done = subprocess.run([sys.executable, "stages/prepare.py", "--params", str(tmp_path / "params.yaml"),
                           "--out", str(tmp_path / "out"), "--reports", str(tmp_path / "reports"),
                           "--metrics", str(tmp_path / "metrics.json")],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    assert f"{tmp_path / 'src'}: no samples found for format voc" in done.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "metrics.json").exists()
    (tmp_path / "nothing").mkdir()
    assert predict_main([str(bundles / "classifier"), str(tmp_path / "nothing")]) == 1
    assert "no image files found" in capsys.readouterr().err


def test_class_with_a_single_image(tmp_path, root):
    add(root, "dog.png", noise_image(64, 48, 35), classes=["dog"])
    stats, manifest, rejected = prepared(tmp_path, root)
    assert not rejected and stats["accepted"] == 5
    assert stats["splits"]["train"]["per_class"]["dog"] == 1  # kept, and trained on
    assert any(w.startswith("class 'dog' appears only in ['train']") for w in stats["warnings"])


def test_same_image_in_two_splits(tmp_path, root):
    """A copy never lands in another split: rejected by default, kept in the same split on request,
    and rejected when the source itself puts the copies in different splits."""
    pixels = noise_image(64, 48, 2)  # good_2's pixels, saved again under other names
    add(root, "train_copy.png", pixels)
    reason = quarantined(tmp_path / "reject", root, "images/train_copy.png", "duplicate_image")
    assert "same pixels as images/good_2.png" in reason and "keep_together" in reason
    stats, manifest, rejected = prepared(tmp_path / "together", root, duplicates="keep_together")
    split = {s.id: s.split for s in manifest.samples}
    assert not rejected and split["images/train_copy.png"] == split["images/good_2.png"]
    assert stats["duplicates_kept_together"] == 1
    records = [Record("a.png", pixels=pixels, label="cat", split="train"),
               Record("b.png", pixels=pixels.copy(), label="cat", split="val")]
    outcome = validate(records, "classification", ["cat"], Policy(duplicates="keep_together"))
    assert [s.id for s in outcome.accepted] == ["a.png"]
    assert [(r.key, r.code) for r in outcome.rejected] == [("b.png", "duplicate_across_splits")]
    assert "leak between splits" in outcome.rejected[0].reason
