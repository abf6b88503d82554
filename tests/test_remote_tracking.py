"""A full training run logged to a remote MLflow tracking server over HTTP: the server (started
on loopback by the test) keeps the run in its SQL store and the artifacts in its own artifact
root; nothing is written to a local store."""

import pytest
from mlflow.tracking import MlflowClient

from pipeline.classify.evaluate import evaluate_classifier
from pipeline.classify.train import train_classifier
from tests.conftest import tiny_config
from tests.mlflow_server import mlflow_server

pytestmark = pytest.mark.slow


def test_training_and_evaluation_log_to_a_tracking_server(tiny_data, tmp_path):
    server_root = tmp_path / "server"
    server_root.mkdir()
    with mlflow_server(server_root) as url:
        cfg = tiny_config(tmp_path, "model/classifier=small_alexnet", "train.classifier.epochs=2")
        cfg.logger.tracking_uri = url  # as `logger.tracking_uri=http://...` in params.yaml
        manifest, pipelines = tiny_data / "prepared/manifest.json", tiny_data / "augment"
        result = train_classifier(cfg, manifest, pipelines, tmp_path / "model",
                                  preview=tiny_data / "ra/classifier_preview.png")
        evaluate_classifier(cfg, manifest, pipelines, tmp_path / "model", tmp_path / "metrics.json",
                            tmp_path / "reports", tmp_path / "confusion")
        client = MlflowClient(tracking_uri=url)
        run = client.get_run(result["run_id"])
        assert run.info.status == "FINISHED" and run.data.params["logger.tracking_uri"] == url
        assert len(client.get_metric_history(run.info.run_id, "val_acc")) == 2
        assert "eval_val_accuracy" in run.data.metrics
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # served by the server, not a local path
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"best.ckpt", "model.json", "evaluation"} <= names
    stored = {p.name for p in (server_root / "artifacts").rglob("*") if p.is_file()}
    assert {"best.ckpt", "model.json", "confusion_val.png"} <= stored  # in the server's artifact root
    assert (server_root / "server.db").is_file()
    assert not (tmp_path / "mlruns").exists()  # no local store was used
