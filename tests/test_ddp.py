"""Lightning DDP on CPU (two processes over gloo, conf/trainer/cpu_ddp.yaml) through the real stage
script: both ranks train, and the MLflow run, its metrics and artifacts, run.json and the stage's
report happen once, on rank zero."""

import json
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from pipeline.tracking import tracking_uri
from tests.conftest import PROJECT_ROOT, tiny_config

pytestmark = pytest.mark.slow


def test_two_cpu_ranks_train_and_rank_zero_alone_logs(tiny_data, tmp_path):
    cfg = tiny_config(tmp_path, "trainer=cpu_ddp", "model/classifier=small_alexnet", "train.classifier.epochs=2",
                      "train.classifier.batch_size=8")
    OmegaConf.save(cfg, tmp_path / "params.yaml")
    # Lightning's DDP launcher starts rank 1 by running this same command line again.
    done = subprocess.run(
        [sys.executable, "stages/train.py", "classifier", "--params", str(tmp_path / "params.yaml"),
         "--manifest", str(tiny_data / "prepared/manifest.json"), "--pipelines", str(tiny_data / "augment"),
         "--preview", str(tiny_data / "ra/classifier_preview.png"), "--out", str(tmp_path / "model")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    for rank in (0, 1):
        assert f"GLOBAL_RANK: {rank}, MEMBER: {rank + 1}/2" in out, out[-3000:]
    assert out.count("train classifier: 2 epochs") == 1  # the stage reports once
    client = MlflowClient(tracking_uri=tracking_uri(cfg.logger))
    runs = client.search_runs([client.get_experiment_by_name(cfg.logger.experiment).experiment_id])
    assert len(runs) == 1  # one MLflow run, not one per rank
    run = runs[0]
    assert json.loads((tmp_path / "model/run.json").read_text())["run_id"] == run.info.run_id
    assert run.data.params["trainer.strategy"] == "ddp" and run.data.params["trainer.devices"] == "2"
    for metric in ("val_acc", "val_loss", "train_loss"):  # one value per epoch: logged by rank zero only
        assert len(client.get_metric_history(run.info.run_id, metric)) == 2, metric
    assert "best.ckpt" in {a.path for a in client.list_artifacts(run.info.run_id)}
