"""The learning-rate finder before a training (`train.<model>.lr_find.enabled`): its picture and
suggestion in the model folder and the MLflow run, and the training run at that rate."""

from __future__ import annotations

import json

import pytest
import torch
from mlflow.tracking import MlflowClient

from pipeline.tasks import get_task
from pipeline.tracking import tracking_uri
from tests.conftest import TRAIN, tiny_config


@pytest.mark.parametrize("task", ["classifier", "detector"])
def test_the_finder_writes_its_picture_and_suggestion_and_the_training_uses_it(task, tiny_data, tmp_path):
    cfg = tiny_config(tmp_path, *TRAIN[task], f"train.{task}.lr_find.enabled=true", f"train.{task}.lr_find.steps=16",
                      f"train.{task}.lr_find.min_lr=1e-5", f"train.{task}.lr_find.max_lr=0.5")
    result = get_task(task).step("train")(cfg, tiny_data / "prepared/manifest.json", tiny_data / "augment",
                                          tmp_path / "model")
    found = json.loads((tmp_path / "model/lr_find.json").read_text())
    assert (tmp_path / "model/lr_find.png").stat().st_size > 10_000
    assert len(found["lr"]) == len(found["loss"]) >= 6 and found["lr"] == sorted(found["lr"])
    assert 1e-5 <= found["lr"][0] < found["lr"][-1] <= 0.5
    suggestion = found["suggestion"]
    assert suggestion in found["lr"] and found["used_lr"] == suggestion
    assert found["configured_lr"] == cfg.train[task].lr != suggestion
    # the training's optimizer started from the suggestion, times each group's multiplier
    groups = torch.load(tmp_path / "model/last.ckpt", weights_only=True)["optimizer_states"][0]["param_groups"]
    mults = list(cfg.train[task].lr_mult)[-len(groups):]
    assert [g["initial_lr"] for g in groups] == pytest.approx([suggestion * m for m in mults])
    client = MlflowClient(tracking_uri=tracking_uri(cfg.logger))
    run = client.get_run(result["run_id"])
    assert run.data.metrics["lr_find_suggestion"] == pytest.approx(suggestion)
    assert {"lr_find.png", "lr_find.json"} <= {a.path for a in client.list_artifacts(result["run_id"])}
