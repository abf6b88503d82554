"""Every task trains and is evaluated on every kind of device this machine has, through the same
stage functions `dvc repro` runs, with `trainer.accelerator` set to the device; the classifier also
with a frozen pretrained backbone on cached features (the phase that makes tensors outside
Lightning's batch transfer). On a machine without a GPU, tests/test_device_placement.py checks the
same placement with PyTorch's meta device."""

import pytest
import torch

from pipeline.tasks import TASKS, headline_metrics
from tests.conftest import TRAIN, tiny_config

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) + (
    ["mps"] if torch.backends.mps.is_available() else [])
CASES = {task: TRAIN[task] for task in TASKS}
CASES["classifier_cached_features"] = ["model/classifier=lite0", "train.classifier.epochs=2",
                                       "train.classifier.freeze_epochs=1", "train.classifier.cache_features=true"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", list(CASES))
def test_training_and_evaluation_of_every_task_on_each_device(case, device, tiny_data, tmp_path):
    assert set(TRAIN) == set(TASKS), "tests/conftest.py TRAIN lists every task"
    task = TASKS[case.split("_")[0]]
    cfg = tiny_config(tmp_path, *CASES[case], f"trainer.accelerator={device}", "+trainer.limit_train_batches=2",
                      "+trainer.limit_val_batches=1")
    manifest, pipelines = tiny_data / "prepared/manifest.json", tiny_data / "augment"
    result = task.step("train")(cfg, manifest, pipelines, tmp_path / "model")
    assert result["metrics"] and (tmp_path / "model/run.json").is_file()
    assert all(torch.isfinite(torch.tensor(v)) for k, v in result["metrics"].items() if "loss" in k)
    metrics = task.step("evaluate")(cfg, manifest, pipelines, tmp_path / "model", tmp_path / "metrics.json",
                                    tmp_path / "reports", tmp_path / "tables")
    assert metrics and (tmp_path / "metrics.json").is_file()
    # every headline number of the registry is in the results (the data has val and test images)
    headline = headline_metrics(task, metrics, 12.0)
    assert list(headline) == [key for key, _ in task.headline] + [task.seconds_key]
    assert all(isinstance(v, float) for v in headline.values()), headline
