"""The real datasets in ../shared/datasets through their configs."""

import pytest

from pipeline.config import compose
from pipeline.data.manifest import Manifest
from pipeline.data.prepare import prepare

pytestmark = pytest.mark.slow


def prepare_option(option, root, tmp_path):
    cfg = compose([f"data={option}", f"data.root={root}"])
    stats = prepare(cfg.data, cfg.seed, tmp_path / "out", tmp_path / "reports", tmp_path / "metrics.json")
    return stats, Manifest.read(tmp_path / "out" / "manifest.json")


def test_raccoon_voc_all_160_accepted_grayscale_converted(tmp_path, shared_datasets):
    stats, manifest = prepare_option("raccoon", shared_datasets / "raccoon", tmp_path)
    assert (stats["found"], stats["accepted"], stats["rejected"]) == (160, 160, 0)
    assert stats["converted_modes"] == {"L": 3}
    assert manifest.classes == ["raccoon"] and stats["duplicates_kept_together"] == 4
    assert {s.split for s in manifest.samples} == {"train", "val", "test"}
    assert sum(len(s.boxes) for s in manifest.samples) == stats["boxes"]["count"] > 160


def test_dolphins_seahorses_folders_122_accepted(tmp_path, shared_datasets):
    stats, manifest = prepare_option("dolphins_seahorses", shared_datasets / "dolphins-and-seahorses", tmp_path)
    assert (stats["found"], stats["accepted"], stats["rejected"]) == (122, 122, 0)
    per_class = {name: sum(info["per_class"][name] for info in stats["splits"].values())
                 for name in manifest.classes}
    assert per_class == {"dolphin": 65, "seahorse": 57}


def test_bccd_voc_all_292_accepted_with_every_dense_box(tmp_path, shared_datasets):
    stats, manifest = prepare_option("bccd", shared_datasets / "bccd", tmp_path)
    assert (stats["found"], stats["accepted"], stats["rejected"]) == (292, 292, 0)
    assert manifest.classes == ["Platelets", "RBC", "WBC"]
    per_class = {name: sum(info["per_class"][name] for info in stats["splits"].values()) for name in manifest.classes}
    assert per_class == {"Platelets": 292, "RBC": 3350, "WBC": 301}  # the dataset's own counts: no box lost
    assert stats["boxes"]["count"] == 3943 and stats["clipped_boxes"] == 0
