"""A full training run logged to a remote MLflow tracking server over HTTP: the server (started
on loopback by the test) keeps the run in its SQL store and the artifacts in its own artifact
root; nothing is written to a local store."""

import json
import time
from pathlib import Path

import pytest
from lightning.pytorch.callbacks import Callback
from mlflow.tracking import MlflowClient

from pipeline.classify.evaluate import evaluate_classifier
from pipeline.classify.train import train_classifier
from pipeline.tracking_offline import JOURNAL, Journal, main
from tests.conftest import tiny_config
from tests.mlflow_server import MlflowServer, mlflow_server

pytestmark = pytest.mark.slow


def test_training_and_evaluation_log_to_a_tracking_server(tiny_data, tmp_path, capsys):
    server_root = tmp_path / "server"
    server_root.mkdir()
    with mlflow_server(server_root) as url:
        cfg = tiny_config(tmp_path, "model/classifier=small_alexnet", "train.classifier.epochs=2", seed_store=False)
        cfg.logger.tracking_uri = url  # as `logger.tracking_uri=http://...` in params.yaml
        manifest, pipelines = tiny_data / "prepared/manifest.json", tiny_data / "augment"
        result = train_classifier(cfg, manifest, pipelines, tmp_path / "model",
                                  preview=tiny_data / "ra/classifier_preview.png")
        evaluate_classifier(cfg, manifest, pipelines, tmp_path / "model", tmp_path / "metrics.json",
                            tmp_path / "reports", tmp_path / "confusion")
        client = MlflowClient(tracking_uri=url)
        run = client.get_run(result["run_id"])
        assert run.info.status == "FINISHED" and run.data.params["logger.tracking_uri"] == url
        printed = capsys.readouterr().out  # the run's link opens MLflow's training view, not its GenAI one
        link = f"{url}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}?workflowType=machine_learning"
        assert f"MLflow run: {link}" in printed and "View run" not in printed, printed[-2000:]
        assert len(client.get_metric_history(run.info.run_id, "val_acc")) == 2
        (evaluated,) = client.get_metric_history(run.info.run_id, "eval_val_accuracy")
        assert run.info.end_time <= evaluated.timestamp  # evaluation does not stretch the training's duration
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # served by the server, not a local path
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"best.ckpt", "model.json", "evaluation"} <= names
    stored = {p.name for p in (server_root / "artifacts").rglob("*") if p.is_file()}
    assert {"best.ckpt", "model.json", "confusion_val.png"} <= stored  # in the server's artifact root
    assert (server_root / "server.db").is_file()
    assert not (tmp_path / "mlruns").exists()  # no local store was used


class StopServerAfterFirstEpoch(Callback):
    def __init__(self, server: MlflowServer):
        self.server = server

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == 0:
            self.server.stop()


def test_a_server_that_goes_away_during_training_keeps_the_model_and_its_logs_for_later(tiny_data, tmp_path,
                                                                                       capsys):
    """The server stops after the first epoch: training ends with its model folder, the run is
    reported as not fully logged, the evaluation's results wait beside its reports, and
    `python -m pipeline.tracking_offline` sends everything once a server is back on the same store."""
    root = tmp_path / "server"
    root.mkdir()
    server = MlflowServer(root)
    cfg = tiny_config(tmp_path, "model/classifier=small_alexnet", "train.classifier.epochs=3",
                      "train.classifier.freeze_epochs=0", "train.classifier.early_stopping_patience=0")
    cfg.logger.tracking_uri = server.start()
    manifest, pipelines, model = tiny_data / "prepared/manifest.json", tiny_data / "augment", tmp_path / "model"
    try:
        started = time.monotonic()
        result = train_classifier(cfg, manifest, pipelines, model, callbacks=[StopServerAfterFirstEpoch(server)])
        training_seconds = time.monotonic() - started
        assert result["epochs"] == 3  # trained to the end
        assert {"best.ckpt", "last.ckpt", "model.json", JOURNAL} <= {p.name for p in model.iterdir()}
        assert json.loads((model / "run.json").read_text())["fully_logged"] is False
        assert "is not fully logged" in capsys.readouterr().err
        kept = Journal(model).entries()
        assert {e["run_id"] for e in kept} == {result["run_id"]}
        steps = {e["step"] for e in kept if e["kind"] == "metrics" and "val_acc" in e["metrics"]}
        assert len(steps) == 2  # epochs 2 and 3 (the first reached the server)
        assert {"best.ckpt", "model.json"} <= {Path(e["path"]).name for e in kept if e["kind"] == "artifact"}
        assert {"run_id": result["run_id"], "kind": "status", "status": "FINISHED"} in kept
        assert training_seconds < 120  # noticed in seconds, not after minutes of retries

        reports = tmp_path / "reports"
        evaluate_classifier(cfg, manifest, pipelines, model, tmp_path / "metrics.json", reports, tmp_path / "conf")
        evaluation = Journal(reports).entries()
        assert "eval_val_accuracy" in evaluation[0]["metrics"]
        assert (reports / "tracking_pending/evaluation/metrics.json").is_file()  # copied: it lies outside reports

        url = server.start()  # the server is back, on the same store
        main([str(model), str(reports), "--tracking-uri", url])
        client = MlflowClient(tracking_uri=url)
        run = client.get_run(result["run_id"])
        assert run.info.status == "FINISHED"
        assert len(client.get_metric_history(run.info.run_id, "val_acc")) == 3
        assert run.data.metrics["eval_val_accuracy"] == json.loads((tmp_path / "metrics.json").read_text())["val"][
            "accuracy"]
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"best.ckpt", "model.json", "evaluation"} <= names
        assert "metrics.json" in {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "evaluation")}
        main([str(model), "--tracking-uri", url])  # sent twice: nothing doubles
        assert len(client.get_metric_history(run.info.run_id, "val_acc")) == 3
    finally:
        server.stop()


def test_sending_kept_logs_names_what_is_missing(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--tracking-uri", f"sqlite:///{tmp_path / 'x.db'}"])
    assert f"no {JOURNAL} in {tmp_path}" in capsys.readouterr().err
