"""Multi-label classification: labels from boxes, thresholds per class, training through the same
tracked fit, evaluation, a bundle and `predict`."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from pipeline.data.manifest import Manifest
from pipeline.io.images import read_image
from pipeline.multilabel.data import MultiLabelData, label_sets, multi_hot
from pipeline.multilabel.evaluate import best_f1_thresholds, split_metrics
from pipeline.predict.bundle import Bundle
from pipeline.predict.preprocess import fit_batch
from pipeline.tracking import tracking_uri
from tests.conftest import PROJECT_ROOT, tiny_config


def test_an_image_is_labelled_with_the_classes_of_its_boxes(tiny_data):
    manifest = Manifest.read(tiny_data / "prepared/manifest.json")
    data = MultiLabelData(tiny_data / "prepared/manifest.json", tiny_data / "augment", 4, 0, 0)
    for split in ("train", "val"):
        samples = {s.id: s for s in manifest.split(split)}
        assert len(data.items[split]) == len(samples) > 0
        for item in data.items[split]:
            expected = np.zeros(len(manifest.classes), np.float32)
            expected[list(samples[item.name].box_labels)] = 1
            assert np.array_equal(item.label, expected), item.name
    assert any(item.label.sum() > 1 for item in data.items["train"])  # several classes in one image


def test_classification_data_is_refused_with_the_reason():
    classification = Manifest("classification", ["a", "b"], [])
    with pytest.raises(ValueError, match="one class per image"):
        label_sets(classification, "train")


def test_thresholds_maximise_f1_per_class_and_apply_to_every_split():
    probs = np.array([[0.9, 0.2], [0.7, 0.35], [0.4, 0.3], [0.1, 0.8]])
    targets = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    thresholds = best_f1_thresholds(probs, targets)
    assert thresholds[0] == pytest.approx(0.7) and thresholds[1] == pytest.approx(0.35)
    m = split_metrics(probs, targets, thresholds, ["cat", "dog"])
    assert m["macro_f1"] == m["micro_f1"] == 1.0 and m["map"] == 1.0 and m["exact_match"] == 1.0
    worse = split_metrics(probs, targets, np.array([0.95, 0.95]), ["cat", "dog"])
    assert worse["micro_f1"] == 0.0 and worse["per_class"]["cat"]["recall"] == 0.0
    assert multi_hot({0, 2}, 3).tolist() == [1.0, 0.0, 1.0]


def test_trained_bundle_predicts_the_models_probabilities_and_its_thresholds(bundles, tiny_data, tmp_path):
    from pipeline.classify.evaluate import load_classifier

    metrics = json.loads((bundles / "multilabel.json").read_text())
    assert set(metrics["thresholds"]) == set(Manifest.read(tiny_data / "prepared/manifest.json").classes)
    assert 0 <= metrics["val"]["map"] <= 1 and "macro_f1" in metrics["val"]
    bundle = Bundle.load(bundles / "multilabel")
    assert bundle.spec["postprocessing"]["thresholds"] == [metrics["thresholds"][c] for c in bundle.labels]
    manifest = Manifest.read(tiny_data / "prepared/manifest.json")
    images = [read_image(manifest.path_of(s)).pixels for s in manifest.split("val")[:3]]
    net, _ = load_classifier(bundles / "models/multilabel")
    inputs = fit_batch(images, bundle.spec["preprocessing"])[0]
    with torch.no_grad():
        expected = torch.sigmoid(net(torch.from_numpy(inputs))).numpy()
    assert np.abs(bundle.run(inputs)[0] - expected).max() < 1e-4
    image = str(manifest.path_of(manifest.split("val")[0]))
    predict = [sys.executable, "-c", "from pipeline.predict.cli import entry; entry()"]
    done = subprocess.run([*predict, str(bundles / "multilabel"), image, "--json", str(tmp_path / "p.json")],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    above = [c for c, p, t in zip(bundle.labels, expected[0], bundle.spec["postprocessing"]["thresholds"]) if p >= t]
    assert f"{len(above)} classes above threshold" in done.stdout
    assert set(json.loads((tmp_path / "p.json").read_text())[image]) == set(above)


def test_training_logs_one_run_with_the_multilabel_metrics(bundles):
    cfg = tiny_config(bundles)
    run_id = json.loads((bundles / "models/multilabel/run.json").read_text())["run_id"]
    run = MlflowClient(tracking_uri(cfg.logger)).get_run(run_id)
    assert run.data.tags["stage"] == "train@multilabel"
    assert {"val_map", "val_f1", "eval_val_map", "eval_val_micro_f1"} <= set(run.data.metrics)
