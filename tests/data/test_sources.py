"""Each of the six formats: fixtures written here, imported, compared with the truth."""

from pathlib import Path

import numpy as np
import pytest

from pipeline.data.manifest import Manifest
from pipeline.data.prepare import DataError, prepare
from tests.helpers import WRITERS, data_config, make_truths, write_folders

EXPECTED_CLASSES = {
    "voc": ["bird", "cat", "dog"],  # discovered, sorted
    "kitti": ["bird", "cat", "dog"],
    "csv": ["bird", "cat", "dog"],
    "coco": ["cat", "dog", "bird"],  # categories in COCO id order
    "yolo": ["cat", "dog", "bird"],  # names file order
}


def run_prepare(tmp_path: Path, **cfg) -> tuple[dict, Manifest]:
    stats = prepare(data_config(**cfg), 0, tmp_path / "out", tmp_path / "reports", tmp_path / "metrics.json")
    return stats, Manifest.read(tmp_path / "out" / "manifest.json")


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_detection_format_round_trip(tmp_path, fmt):
    truths = make_truths(n=6)
    WRITERS[fmt](tmp_path / "src", truths)
    stats, manifest = run_prepare(tmp_path, format=fmt, root=str(tmp_path / "src"))
    assert (stats["found"], stats["accepted"], stats["rejected"]) == (6, 6, 0)
    assert manifest.task == "detection"
    assert manifest.classes == EXPECTED_CLASSES[fmt]
    by_name = {Path(s.origin).name: s for s in manifest.samples}
    for t in truths:
        s = by_name[t.name]
        assert (s.width, s.height) == (t.width, t.height)
        np.testing.assert_allclose(s.boxes, t.boxes, atol=1e-3)
        assert [manifest.classes[c] for c in s.box_labels] == t.classes
        # clean 8-bit RGB PNGs are stored byte for byte
        assert manifest.path_of(s).read_bytes() == (tmp_path / "src" / "images" / t.name).read_bytes()
    if fmt == "kitti":
        assert stats["ignored_annotations"] == len(truths)  # one DontCare region per image, counted
    assert {s.split for s in manifest.samples} <= {"train", "val", "test"}
    assert (tmp_path / "reports" / "samples.png").stat().st_size > 0
    assert (tmp_path / "reports" / "histograms.png").stat().st_size > 0


def test_image_folders_round_trip(tmp_path):
    write_folders(tmp_path / "src", {"dolphin": 7, "seahorse": 5})
    stats, manifest = run_prepare(tmp_path, format="folders", root=str(tmp_path / "src"))
    assert manifest.task == "classification"
    assert manifest.classes == ["dolphin", "seahorse"]
    assert (stats["accepted"], stats["rejected"]) == (12, 0)
    for s in manifest.samples:
        assert manifest.classes[s.label] == Path(s.origin).parent.name
        assert s.boxes == []


def test_fixed_class_list_sets_ids(tmp_path):
    write_folders(tmp_path / "src", {"a": 3, "b": 3})
    _, manifest = run_prepare(tmp_path, format="folders", root=str(tmp_path / "src"), classes=["b", "a"])
    assert manifest.classes == ["b", "a"]
    assert all(manifest.classes[s.label] == Path(s.origin).parent.name for s in manifest.samples)


def test_yolo_names_from_data_yaml(tmp_path):
    truths = make_truths(n=3)
    WRITERS["yolo"](tmp_path / "src", truths)
    (tmp_path / "src" / "data.yaml").write_text("names: {0: cat, 1: dog, 2: bird}\n")
    _, manifest = run_prepare(tmp_path, format="yolo", root=str(tmp_path / "src"), names_file="data.yaml")
    assert manifest.classes == ["cat", "dog", "bird"]


def test_missing_dataset_folder_says_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"not found .*Put the data there .*data.root="):
        run_prepare(tmp_path, format="voc", root=str(tmp_path / "nowhere"), name="raccoon")


def test_empty_dataset_is_a_clear_error(tmp_path):
    (tmp_path / "src" / "images").mkdir(parents=True)
    (tmp_path / "src" / "annotations").mkdir()
    with pytest.raises(DataError, match="no samples found"):
        run_prepare(tmp_path, format="voc", root=str(tmp_path / "src"))
    assert not (tmp_path / "out").exists()


def test_unknown_format_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not a known source"):
        run_prepare(tmp_path, format="pascal", root=str(tmp_path))


def test_symlinked_image_folder_is_not_mistaken_for_path_traversal(tmp_path):
    truths = make_truths(n=3)
    WRITERS["voc"](tmp_path / "elsewhere", truths)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "images").symlink_to(tmp_path / "elsewhere" / "images")
    (tmp_path / "src" / "annotations").symlink_to(tmp_path / "elsewhere" / "annotations")
    stats, manifest = run_prepare(tmp_path, format="voc", root=str(tmp_path / "src"))
    assert (stats["accepted"], stats["rejected"]) == (3, 0)
    assert sorted(s.id for s in manifest.samples) == sorted(f"images/{t.name}" for t in truths)


def test_csv_with_a_byte_order_mark_reads_its_header(tmp_path):
    """Spreadsheet tools start a UTF-8 CSV with a byte-order mark: the first column is still `filename`."""
    truths = make_truths(n=3)
    WRITERS["csv"](tmp_path / "src", truths)
    path = tmp_path / "src" / "annotations.csv"
    path.write_text("\ufeff" + path.read_text(encoding="utf-8"), encoding="utf-8")
    stats, manifest = run_prepare(tmp_path, format="csv", root=str(tmp_path / "src"))
    assert (stats["found"], stats["accepted"], stats["rejected"]) == (3, 3, 0)
