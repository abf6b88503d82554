"""Detector training and evaluation on tiny data: the Lightning loop, the MLflow run, the saved
folder, the metrics, PR curves and pictures."""

from __future__ import annotations

import json

import pytest
import torch
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from pipeline.detect.evaluate import evaluate_detector
from pipeline.detect.train import load_detector, train_detector, training_epochs
from pipeline.precision import cpu_has_native_bf16
from pipeline.tracking import tracking_uri
from tests.conftest import tiny_config


def test_train_detector_tracks_a_run_and_saves_a_loadable_model(tiny_data, tmp_path):
    cfg = tiny_config(tmp_path, "train.detector.epochs=2", "train.detector.freeze_epochs=1",
                      "train.detector.batch_size=8", "train.detector.ema_epochs=1", "train.detector.monitor=last")
    result = train_detector(cfg, tiny_data / "prepared/manifest.json", tiny_data / "augment", tmp_path / "det")
    best = torch.load(tmp_path / "det/best.ckpt", weights_only=True)  # the average, the weights as trained beside it
    head = next(k for k in best["state_dict"] if k.startswith("net.class_heads"))
    assert not torch.equal(best["state_dict"][head], best["current_model_state"][head])
    # monitor last: the last epoch's average ships, no metric picked an epoch
    last = torch.load(tmp_path / "det/last.ckpt", weights_only=True)
    assert best["epoch"] == last["epoch"] == 1 and torch.equal(best["state_dict"][head], last["state_dict"][head])
    assert [state["monitor"] for key, state in best["callbacks"].items() if key.startswith("ModelCheckpoint")] == [None]
    assert {"val_map_50", "val_map", "train_loss", "val_loss"} <= set(result["metrics"])
    client = MlflowClient(tracking_uri(cfg.logger))
    run = client.get_run(result["run_id"])
    assert run.data.tags["stage"] == "train@detector" and run.data.params["model.detector.backbone"] == \
        "tf_efficientnet_lite0"
    assert len(client.get_metric_history(run.info.run_id, "val_map_50")) == 2
    assert run.data.params["derived.epochs"] == "2"  # an explicit number of epochs is kept
    assert run.data.params["derived.flip"] == "True"  # flip: auto with the default augmentation's mirror images
    assert 0 < float(run.data.params["derived.ema_decay"]) < 1
    # its neck and heads trained in bf16 where the CPU has it natively (pipeline.precision)
    assert run.data.params["derived.precision"] == "32-true"
    assert run.data.params["derived.dense_layers_precision"] == ("bf16-mixed" if cpu_has_native_bf16() else "32-true")
    assert {"best.ckpt", "model.json", "detector_eval.json"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    net, anchors, coder, info = load_detector(tmp_path / "det")
    assert info["postprocess"]["flip"] is True  # as resolved: evaluation and export read it from here
    with torch.no_grad():
        logits, deltas = net(torch.zeros(1, 3, 160, 160))
    assert logits.shape == (1, len(anchors), len(info["classes"])) and deltas.shape == (1, len(anchors), 4)

    results = evaluate_detector(cfg, tiny_data / "prepared/manifest.json", tiny_data / "augment", tmp_path / "det",
                                tmp_path / "metrics.json", tmp_path / "reports", tmp_path / "pr")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert set(saved) == set(results) and "val" in saved and 0.0 <= saved["val"]["map_50"] <= 1.0
    assert {"map", "map_50", "map_75", "per_class", "objects"} <= set(saved["val"])
    assert 0.0 <= saved["val"]["best_f1_confidence"] <= 1.0 and 0.0 <= saved["val"]["best_f1"] <= 1.0
    pictures = {"pr_val.png", "predictions_val.png", "f1_confidence_val.png", "confusion_val.png", "labels.png",
                "anchors.png"}
    fit = json.loads((tmp_path / "det/model.json").read_text())["anchor_fit"]
    assert saved["anchors"] == fit and fit["fitted"]["fitness"] >= fit["preset"]["fitness"]
    assert all((tmp_path / "reports" / name).stat().st_size > 10_000 for name in pictures)
    confusion = (tmp_path / "pr/confusion/val.csv").read_text().splitlines()
    assert confusion[0] == "actual,predicted"  # a row per object (found or missed), then per detection of nothing
    assert sum(not row.startswith("background,") for row in confusion[1:]) == saved["val"]["objects"]
    assert len((tmp_path / "pr/confidence/val.csv").read_text().splitlines()) == 102  # header + 101 thresholds
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {f"evaluation/{name}" for name in pictures} | {"evaluation/metrics.json"} <= logged
    assert {"eval_val_map_50", "eval_val_best_f1", "anchor_recall_fitted", "anchor_recall_preset"} <= set(
        client.get_run(run.info.run_id).data.metrics)
    info = json.loads((tmp_path / "det/model.json").read_text())  # as written by a pipeline without box voting
    assert info["postprocess"]["vote_iou"] == cfg.train.detector.postprocess.vote_iou
    del info["postprocess"]["vote_iou"]
    (tmp_path / "det/model.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"model.json: no postprocess vote_iou; train it again"):
        load_detector(tmp_path / "det")


def test_a_lone_last_training_image_waits_for_the_next_epoch(tiny_data):
    from pipeline.detect.data import DetectionData

    n = len(DetectionData(tiny_data / "prepared/manifest.json", tiny_data / "augment").samples["train"])
    data = DetectionData(tiny_data / "prepared/manifest.json", tiny_data / "augment", batch_size=n - 1)
    sizes = [len(batch["images"]) for batch in data.train_dataloader()]
    assert sizes == [n - 1] and data.steps_per_epoch() == 1  # batch norm cannot train on one image
    assert [len(b["images"]) for b in data.val_dataloader()] == [len(data.samples["val"])]  # evaluation keeps all
    even = DetectionData(tiny_data / "prepared/manifest.json", tiny_data / "augment", batch_size=n - 2)
    assert [len(batch["images"]) for batch in even.train_dataloader()] == [n - 2, 2]


@pytest.mark.parametrize("epochs,steps_per_epoch,expected", [("auto", 17, 16), ("auto", 7, 36), ("auto", 250, 16),
                                                              (5, 7, 5), (40, 17, 40)])
def test_auto_epochs_give_a_small_dataset_enough_optimizer_steps(epochs, steps_per_epoch, expected):
    tc = OmegaConf.create({"epochs": epochs, "min_epochs": 16, "min_steps": 250})
    assert training_epochs(tc, steps_per_epoch) == expected


@pytest.mark.parametrize("epochs", ["atuo", 0, True, 2.5])
def test_epochs_other_than_a_positive_integer_or_auto_are_an_error(epochs):
    with pytest.raises(ValueError, match="train.detector.epochs"):
        training_epochs(OmegaConf.create({"epochs": epochs, "min_epochs": 16, "min_steps": 250}), 10)
