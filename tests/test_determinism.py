"""Determinism: the same seed and config give identical metrics (and checkpoints) in two CPU runs."""

from __future__ import annotations

import hashlib

import pytest

from pipeline.classify.evaluate import evaluate_classifier
from pipeline.classify.train import train_classifier
from pipeline.detect.evaluate import evaluate_detector
from pipeline.detect.train import train_detector
from tests.conftest import tiny_config

TASKS = {
    "classifier": (train_classifier, evaluate_classifier,
                   ["model/classifier=small_alexnet", "train.classifier.epochs=2", "train.classifier.freeze_epochs=0"]),
    "detector": (train_detector, evaluate_detector,
                 ["train.detector.epochs=2", "train.detector.freeze_epochs=1", "train.detector.batch_size=8"]),
}


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("task", sorted(TASKS))
def test_same_seed_and_config_give_identical_results(task, tiny_data, tmp_path):
    train, evaluate, overrides = TASKS[task]
    manifest, pipelines = tiny_data / "prepared/manifest.json", tiny_data / "augment"
    runs = []
    for name in ("first", "second"):
        cfg = tiny_config(tmp_path / name, *overrides)
        trained = train(cfg, manifest, pipelines, tmp_path / name / "model")
        scores = evaluate(cfg, manifest, pipelines, tmp_path / name / "model", tmp_path / name / "metrics.json",
                          tmp_path / name / "reports", tmp_path / name / "tables")
        runs.append((trained["metrics"], scores, digest(tmp_path / name / "model/best.ckpt"),
                     (tmp_path / name / "metrics.json").read_text()))
    assert runs[0][0] and runs[0][0] == runs[1][0]  # training metrics, exactly equal
    assert runs[0][1] == runs[1][1] and runs[0][3] == runs[1][3]  # evaluation metrics and their file
    assert runs[0][2] == runs[1][2]  # the same weights, byte for byte
