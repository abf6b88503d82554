"""Validation: every input ends accepted or rejected with its reason; counts reconcile."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.data.prepare import DataError, prepare
from tests.helpers import add, data_config, noise_image, prepare_voc, voc_xml, write_image


@pytest.fixture
def broken(tmp_path):
    """A VOC folder with good images and one sample per kind of problem."""
    root = tmp_path / "src"
    img = lambda seed, w=64, h=48: noise_image(w, h, seed)  # noqa: E731
    for i in range(4):
        add(root, f"good_{i}.png", img(i))
    good_jpeg = root / "images" / "good_0.png"
    # undecodable: a truncated JPEG and a text file named .jpg
    write_image(root / "tmp.jpg", img(50), quality=95)
    data = (root / "tmp.jpg").read_bytes()
    (root / "tmp.jpg").unlink()
    (root / "images" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    add(root, "truncated.jpg", None, size=(64, 48))
    (root / "images" / "not_an_image.jpg").write_text("hello, I am text")
    add(root, "not_an_image.jpg", None, size=(64, 48))
    add(root, "zero_area.png", img(10), boxes=[(11, 11, 10, 30)])  # VOC 1-based: xmin-1 == xmax
    add(root, "inverted.png", img(11), boxes=[(30, 11, 10, 30)])
    add(root, "outside_far.png", img(12), boxes=[(1, 1, 90, 30)])
    add(root, "outside_near.png", img(13), boxes=[(1, 1, 65, 30)])  # 1 px past the border: clipped
    add(root, "unknown_class.png", img(14), classes=["zebra"])
    write_image(root / "images" / "no_annotation.png", img(15))
    add(root, "missing_image.png", None)  # annotation without image
    (root / "annotations" / "escape.xml").write_text(voc_xml("../../secret.png", (64, 48), [(1, 1, 5, 5)]))
    write_image(root / "images" / "z_duplicate.png", np.asarray(Image.open(good_jpeg)))  # sorts after good_0
    add(root, "z_duplicate.png", None, size=(64, 48))
    add(root, "size_mismatch.png", img(16), size=(128, 96))
    return root


EXPECTED_REJECTIONS = {
    "images/truncated.jpg": "undecodable_image",
    "images/not_an_image.jpg": "undecodable_image",
    "images/zero_area.png": "zero_area_box",
    "images/inverted.png": "inverted_box",
    "images/outside_far.png": "box_outside_image",
    "images/unknown_class.png": "unknown_class",
    "images/no_annotation.png": "image_without_annotation",
    "images/missing_image.png": "annotation_without_image",
    "annotations/escape.xml:../../secret.png": "path_traversal",
    "images/z_duplicate.png": "duplicate_image",
    "images/size_mismatch.png": "size_mismatch",
}


def test_broken_folder_one_reason_per_bad_sample_and_counts_reconcile(tmp_path, broken):
    stats, manifest, rejected = prepare_voc(tmp_path, broken, classes=["cat"])
    assert {k: r["code"] for k, r in rejected.items()} == EXPECTED_REJECTIONS
    accepted = {s.id for s in manifest.samples}
    assert accepted == {f"images/good_{i}.png" for i in range(4)} | {"images/outside_near.png"}
    assert stats["found"] == stats["accepted"] + stats["rejected"] == len(accepted) + len(EXPECTED_REJECTIONS)
    assert stats["clipped_boxes"] == 1
    for r in rejected.values():  # every reason names the file and says what to do
        assert r["reason"].strip() and (r["item"].split(":")[0].split("/")[-1] in r["reason"])
    clipped = next(s for s in manifest.samples if s.id == "images/outside_near.png")
    assert clipped.boxes == [[0.0, 0.0, 64.0, 30.0]]


def test_policy_knobs_change_outcomes(tmp_path, broken):
    stats, manifest, rejected = prepare_voc(tmp_path, broken, classes=["cat"], allow_unannotated=True,
                                            boxes={"clip_tolerance": 50.0, "min_size": 1.0})
    ids = {s.id for s in manifest.samples}
    assert "images/no_annotation.png" in ids and "images/outside_far.png" in ids
    assert next(s for s in manifest.samples if s.id == "images/no_annotation.png").boxes == []


def test_duplicates_kept_together_share_a_split(tmp_path):
    root = tmp_path / "src"
    pixels = noise_image(64, 48, 1)
    for i in range(8):
        add(root, f"a_{i}.png", noise_image(64, 48, 100 + i))
    add(root, "first.png", pixels, boxes=[(2, 2, 20, 20)])
    add(root, "second.png", pixels, boxes=[(3, 3, 21, 21)])  # same pixels, other annotation
    for seed in range(5):
        stats, manifest, rejected = prepare_voc(tmp_path / str(seed), root, duplicates="keep_together")
        by_id = {s.id: s for s in manifest.samples}
        assert not rejected and stats["duplicates_kept_together"] == 1
        assert by_id["images/second.png"].duplicate_of == "images/first.png"
        assert by_id["images/second.png"].boxes == [[2.0, 2.0, 21.0, 21.0]]  # its own annotation
        assert by_id["images/second.png"].split == by_id["images/first.png"].split


def test_converted_image_modes_reach_rgb(tmp_path):
    root = tmp_path / "src"
    rgb = noise_image(64, 48, 7)
    add(root, "gray.png", np.asarray(Image.fromarray(rgb).convert("L")))
    Image.fromarray(rgb).convert("RGBA").save(root / "images" / "rgba.png")
    add(root, "rgba.png", None, size=(64, 48))
    Image.fromarray(rgb).convert("CMYK").save(root / "images" / "cmyk.jpg", quality=95)
    add(root, "cmyk.jpg", None, size=(64, 48))
    deep = (np.arange(64 * 48, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)
    Image.fromarray(deep).save(root / "images" / "deep16.png")
    add(root, "deep16.png", None, size=(64, 48))
    stats, manifest, rejected = prepare_voc(tmp_path, root)
    assert not rejected and stats["accepted"] == 4
    assert sum(stats["converted_modes"].values()) == 4 and "CMYK" in stats["converted_modes"]
    for s in manifest.samples:
        with Image.open(manifest.path_of(s)) as im:
            assert im.mode == "RGB" and im.size == (64, 48)
    deep_rgb = np.asarray(Image.open(manifest.path_of(next(s for s in manifest.samples if "deep16" in s.id))))
    np.testing.assert_array_equal(deep_rgb[..., 0], np.rint(deep / 257).astype(np.uint8))


def exif_jpeg(path: Path, stored: np.ndarray, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    write_image(path, stored, quality=98, exif=exif.tobytes())


@pytest.mark.parametrize("declared", ["stored", "displayed"])
def test_exif_rotated_image_boxes_follow_the_displayed_pixels(tmp_path, declared):
    """Orientation 6 (display = stored turned 90 degrees clockwise), red object at a known box."""
    root = tmp_path / "src"
    stored = np.zeros((40, 80, 3), np.uint8)
    stored[5:15, 50:70] = (255, 0, 0)  # stored-frame box [50, 5, 70, 15]
    exif_jpeg(root / "images" / "rotated.jpg", stored, 6)
    if declared == "stored":  # annotated on the stored pixels (e.g. LabelImg), declares 80x40
        add(root, "rotated.jpg", None, boxes=[(51, 6, 70, 15)], size=(80, 40))
    else:  # annotated on the displayed pixels, declares 40x80: display box = [25, 50, 35, 70]
        add(root, "rotated.jpg", None, boxes=[(26, 51, 35, 70)], size=(40, 80))
    stats, manifest, rejected = prepare_voc(tmp_path, root)
    assert not rejected and stats["exif_rotated"] == 1
    (s,) = manifest.samples
    assert (s.width, s.height) == (40, 80)
    shown = np.asarray(Image.open(manifest.path_of(s)))
    ys, xs = np.nonzero(shown[..., 0] > 128)
    red_box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    np.testing.assert_allclose(s.boxes[0], red_box, atol=1)
    np.testing.assert_allclose(s.boxes[0], [25, 50, 35, 70], atol=1e-6)


def test_decompression_bomb_limit_is_a_rejection(tmp_path):
    root = tmp_path / "src"
    add(root, "big.png", noise_image(64, 48, 3))
    add(root, "ok.png", noise_image(8, 8, 4), boxes=[(1, 1, 4, 4)])
    stats, manifest, rejected = prepare_voc(tmp_path, root, max_image_pixels=1000)
    assert rejected["images/big.png"]["code"] == "decompression_bomb"
    assert "max_image_pixels" in rejected["images/big.png"]["reason"]


def test_all_rejected_is_a_clear_error(tmp_path):
    root = tmp_path / "src"
    add(root, "a.png", noise_image(64, 48, 1), classes=["zebra"])
    with pytest.raises(DataError, match="all 1 samples were rejected.*zebra"):
        prepare_voc(tmp_path, root, classes=["cat"])


def test_classification_unknown_label_is_rejected(tmp_path):
    from tests.helpers import write_folders

    write_folders(tmp_path / "src", {"a": 2, "b": 2, "c": 1})
    cfg = data_config(format="folders", root=str(tmp_path / "src"), classes=["a", "b"])
    stats = prepare(cfg, 0, tmp_path / "out", tmp_path / "r", tmp_path / "m.json")
    assert stats["rejected_by_code"] == {"unknown_class": 1} and stats["accepted"] == 4
