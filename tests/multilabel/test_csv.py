"""A multi-label CSV (filename,labels) through prepare, training, evaluation, export and predict."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.data.manifest import Manifest
from pipeline.data.prepare import prepare
from pipeline.export.build import export_bundle
from pipeline.multilabel.evaluate import evaluate_multilabel
from pipeline.multilabel.train import train_multilabel
from tests.conftest import PROJECT_ROOT, prepare_and_augment, tiny_config
from tests.helpers import data_config

pytestmark = pytest.mark.xdist_group("multilabel_csv")  # its module fixture is built once, on one worker

BOM = "\ufeff"  # what spreadsheet tools write first


@pytest.fixture(scope="module")
def csv_dataset(tiny_data, tmp_path_factory):
    """The tiny synthetic images as a multi-label CSV (each image labelled with its shapes), plus
    the rows a user's file may hold: an empty label cell, an empty filename, an image listed twice,
    a missing image and an image no row names."""
    root = tmp_path_factory.mktemp("multilabel") / "data"
    manifest = Manifest.read(tiny_data / "prepared/manifest.json")
    (root / "images").mkdir(parents=True)
    rows, truth = [], {}
    for s in manifest.samples:
        if s.split == "scene":
            continue
        name = Path(s.file).name
        shutil.copy(manifest.path_of(s), root / "images" / name)
        labels = sorted({manifest.classes[c] for c in s.box_labels})
        truth[f"images/{name}"] = labels
        rows.append(f"{name},{' '.join(labels)}")
    shutil.copy(manifest.path_of(manifest.samples[0]), root / "images" / "no_objects.png")
    rows += ["no_objects.png,", ",circle", f"{rows[0].split(',')[0]},square", "missing.png,star"]
    shutil.copy(manifest.path_of(manifest.samples[1]), root / "images" / "unlisted.png")
    (root / "labels.csv").write_text(BOM + "filename,labels\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return root, truth


def test_prepare_reads_label_sets_and_quarantines_each_bad_row(csv_dataset, tmp_path):
    root, truth = csv_dataset
    stats = prepare(data_config(format="multilabel_csv", root=str(root)), 0, tmp_path / "out", tmp_path / "r",
                    tmp_path / "m.json")
    manifest = Manifest.read(tmp_path / "out/manifest.json")
    assert manifest.task == "multilabel" and manifest.classes == sorted({c for v in truth.values() for c in v})
    rejected = {r["code"] for r in json.loads((tmp_path / "out/rejected.json").read_text())}
    assert rejected == {"bad_annotation", "annotation_without_image", "image_without_annotation"}
    assert stats["found"] == stats["accepted"] + stats["rejected"]
    by_origin = {s.origin: s for s in manifest.samples}
    first = next(iter(truth))
    assert first not in by_origin  # listed twice: quarantined, never guessed
    for origin, labels in truth.items():
        if origin != first:
            assert [manifest.classes[c] for c in by_origin[origin].labels] == labels, origin
    assert by_origin["images/no_objects.png"].labels == []  # an empty cell: an image with none of the classes


def test_multilabel_csv_trains_evaluates_exports_and_predicts(csv_dataset, tmp_path):
    root, _ = csv_dataset
    cfg = tiny_config(tmp_path, "data=multilabel_csv", f"data.root={root}", "train.multilabel.epochs=1",
                      "train.multilabel.freeze_epochs=0", "model/classifier@model.multilabel=small_alexnet")
    manifest = prepare_and_augment(cfg, tmp_path, seed=0)
    train_multilabel(cfg, manifest, tmp_path / "augment", tmp_path / "model")
    results = evaluate_multilabel(cfg, manifest, tmp_path / "augment", tmp_path / "model", tmp_path / "ml.json",
                                  tmp_path / "reports", tmp_path / "tables")
    assert results["val"]["count"] > 0 and (tmp_path / "reports/pr_val.png").is_file()
    export_bundle("multilabel", cfg, tmp_path / "model", manifest, tmp_path / "ml.json", tmp_path / "bundle",
                  tmp_path / "parity.json")
    done = subprocess.run([sys.executable, "-c", "from pipeline.predict.cli import entry; entry()",
                           str(tmp_path / "bundle"), str(root / "images")], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("classes above threshold") == len(list((root / "images").iterdir()))
