"""Classifier training end to end on tiny data: MLflow contents, resume, phases, evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from mlflow.tracking import MlflowClient
from PIL import Image

from pipeline.classify.evaluate import evaluate_classifier, load_classifier
from pipeline.classify.train import train_classifier
from pipeline.io.atomic import partial_dir
from pipeline.precision import cpu_has_native_bf16
from pipeline.tracking import file_sha256, tracking_uri
from tests.conftest import tiny_config

SCRATCH = ["model/classifier=small_alexnet", "train.classifier.epochs=2", "train.classifier.batch_size=16"]
LITE0 = ["model/classifier=lite0", "train.classifier.epochs=3", "train.classifier.freeze_epochs=1",
         "train.classifier.batch_size=16"]


def fit(tiny_data, tmp_path, overrides, out="model", **kwargs):
    cfg = tiny_config(tmp_path, *overrides)
    result = train_classifier(cfg, tiny_data / "prepared/manifest.json", tiny_data / "augment", tmp_path / out,
                              preview=tiny_data / "ra/classifier_preview.png", **kwargs)
    return cfg, result


def test_run_holds_params_metrics_tags_and_artifacts(tiny_data, tmp_path):
    cfg, result = fit(tiny_data, tmp_path, SCRATCH)
    evaluate_classifier(cfg, tiny_data / "prepared/manifest.json", tiny_data / "augment", tmp_path / "model",
                        tmp_path / "metrics.json", tmp_path / "reports", tmp_path / "confusion")
    client = MlflowClient(tracking_uri=tracking_uri(cfg.logger))
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["model.classifier.name"] == "small_alexnet" and params["train.classifier.epochs"] == "2"
    assert params["data.name"] == "synthetic_tiny" and params["seed"] == "42"
    # small_alexnet has no grouped convolutions: bf16 where the CPU has it natively
    assert params["trainer.precision"] == "auto"
    assert params["derived.precision"] == ("bf16-mixed" if cpu_has_native_bf16() else "32-true")
    for metric in ("train_loss", "val_loss", "train_acc", "val_acc", "train_f1", "val_f1"):
        history = client.get_metric_history(run.info.run_id, metric)
        assert len(history) == 2, metric  # one value per epoch
    for metric in ("eval_val_accuracy", "eval_val_macro_f1", "eval_val_precision_circle", "eval_val_recall_star"):
        assert metric in run.data.metrics
    tags = run.data.tags
    assert tags["stage"] == "train@classifier" and tags["git_commit"]
    assert tags["data_manifest_sha256"] == file_sha256(tiny_data / "prepared/manifest.json")
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    names |= {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    for expected in ("best.ckpt", "model.json", "classifier_train.json", "classifier_eval.json",
                     "classifier_preview.png", "evaluation/confusion_val.png", "evaluation/misclassified_val.png",
                     "evaluation/predictions_val.png",
                     "evaluation/metrics.json"):
        assert expected in names, (expected, names)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics["val"]["per_class"]) == {"circle", "square", "triangle", "star", "background"}
    assert (tmp_path / "confusion/val.csv").read_text().startswith("actual,predicted")


class Interrupt(Exception):
    pass


class InterruptAtEpoch(Callback):
    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == self.epoch:
            raise Interrupt(f"stopped at epoch {self.epoch}")


def test_resume_from_last_checkpoint_matches_uninterrupted_run(tiny_data, tmp_path):
    """Frozen epoch on cached features, then two fine-tuning epochs; interrupted after the first."""
    _, whole = fit(tiny_data, tmp_path, LITE0, out="whole")
    with pytest.raises(Interrupt):
        fit(tiny_data, tmp_path, LITE0, out="split", callbacks=[InterruptAtEpoch(1)])
    assert not (tmp_path / "split").exists()  # nothing half-done where the model belongs
    interrupted_run = json.loads((partial_dir(tmp_path / "split") / "run.json").read_text())["run_id"]
    cfg, resumed = fit(tiny_data, tmp_path, LITE0, out="split", resume=True)
    assert not partial_dir(tmp_path / "split").exists()
    client = MlflowClient(tracking_uri=tracking_uri(cfg.logger))
    assert client.get_run(resumed["run_id"]).info.status == "FINISHED"
    assert resumed["run_id"] == interrupted_run != whole["run_id"]
    for name in ("val_loss", "val_acc", "val_f1", "train_loss"):
        assert resumed["metrics"][name] == pytest.approx(whole["metrics"][name], abs=1e-6), name
    a, _ = load_classifier(tmp_path / "whole", "last.ckpt")
    b, _ = load_classifier(tmp_path / "split", "last.ckpt")
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(x, y, atol=1e-6), name
    history = client.get_metric_history(resumed["run_id"], "val_loss")
    assert len(history) == 3  # the resumed run continued the interrupted run's history
    for name in ("val_loss", "val_acc", "train_loss"):  # the curves for `dvc plots`: each epoch once
        tables = [(tmp_path / out / "epochs" / f"{name}.csv").read_text().splitlines() for out in ("whole", "split")]
        assert tables[0][0] == tables[1][0] == f"epoch,{name}"
        assert [row.split(",")[0] for row in tables[1][1:]] == ["0", "1", "2"]
        assert [float(row.split(",")[1]) for row in tables[1][1:]] == pytest.approx(
            [float(row.split(",")[1]) for row in tables[0][1:]], abs=1e-5)
        assert float(tables[1][-1].split(",")[1]) == pytest.approx(resumed["metrics"][name], abs=1e-5)


class BatchKinds(Callback):
    def __init__(self):
        self.kinds = {}

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.kinds.setdefault(trainer.current_epoch, "features" if "features" in batch else "images")


def test_frozen_phase_trains_the_head_on_cached_features(tiny_data, tmp_path):
    kinds = BatchKinds()
    _, result = fit(tiny_data, tmp_path, LITE0, callbacks=[kinds])
    assert kinds.kinds == {0: "features", 1: "images", 2: "images"}
    net, info = load_classifier(tmp_path / "model", "last.ckpt")
    assert info["input_size"] == [64, 64] and info["classes"][-1] == "background"
    assert np.isfinite(result["metrics"]["val_loss"])


def test_classify_prints_one_line_per_image_in_the_classic_format(tiny_data, tmp_path, capsys):
    from pipeline.classify import cli
    from tests.helpers import noise_image, write_image

    fit(tiny_data, tmp_path, SCRATCH)
    folder = tmp_path / "images"
    write_image(folder / "b.png", noise_image(50, 40, 1))
    write_image(folder / "sub/a.jpg", noise_image(80, 60, 2))
    (folder / "broken.jpg").write_bytes(b"not an image")
    capsys.readouterr()  # the training's own output
    code = cli.main([str(folder), "--model", str(tmp_path / "model"), "--json", str(tmp_path / "p.json"),
                     "--out", str(tmp_path / "pictures")])
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert code == 1 and "broken.jpg" in err  # reported, the others still classified
    assert [line.split()[0] for line in lines] == ["b.png", "a.jpg"]
    for line in lines:
        name, is_, article, best, *shares = line.split()
        assert is_ == "is" and article in ("a", "an") and len(shares) == 5
        values = {s.split("=")[0]: float(s.split("=")[1].rstrip("%")) for s in shares}
        assert abs(sum(values.values()) - 100) < 0.01 and max(values, key=values.get) == best
    assert len(json.loads((tmp_path / "p.json").read_text())) == 2
    drawn = {p.name: Image.open(p).size for p in (tmp_path / "pictures").iterdir()}
    bars = 3 * 16 + 4  # the top three classes under each image
    assert drawn == {"b_classes.png": (256, round(256 * 40 / 50) + bars), "a_classes.png": (256, 192 + bars)}


@pytest.mark.parametrize("optimizer, monitor", [("sgd", "val_acc"), ("adam", "val_f1")])
def test_the_optimizer_and_the_monitor_come_from_config(tiny_data, tmp_path, optimizer, monitor):
    """best.ckpt is the epoch with the best `monitor` (highest for a score), stepped by the optimizer named."""
    _, result = fit(tiny_data, tmp_path, [*SCRATCH, "train.classifier.epochs=3",
                                          "train.classifier.optimizer.momentum=0.8",
                                          f"train.classifier.optimizer.name={optimizer}",
                                          f"train.classifier.monitor={monitor}"])
    best = torch.load(tmp_path / "model/best.ckpt", weights_only=False)
    saved = next(v for k, v in best["callbacks"].items() if k.startswith("ModelCheckpoint"))
    assert saved["monitor"] == monitor and "'mode': 'max'" in next(
        k for k in best["callbacks"] if k.startswith("ModelCheckpoint"))
    history = [m.value for m in MlflowClient(tracking_uri=tracking_uri(tiny_config(tmp_path).logger))
               .get_metric_history(result["run_id"], monitor)]
    assert len(history) == 3 and float(saved["best_model_score"]) == pytest.approx(max(history))
    state = best["optimizer_states"][0]
    group = state["param_groups"][0]
    if optimizer == "sgd":
        assert group["momentum"] == 0.8 and all("momentum_buffer" in s for s in state["state"].values())
    else:
        assert group["betas"][0] == 0.8 and not group["decoupled_weight_decay"]  # Adam, not AdamW
