"""Every task trains on every kind of device this machine has: a training step of each, through
the same stage function `dvc repro` runs, with `trainer.accelerator` set to the device."""

import pytest
import torch

from pipeline.tasks import TASKS
from tests.conftest import TRAIN, tiny_config

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) + (
    ["mps"] if torch.backends.mps.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("task", list(TASKS))
def test_one_training_step_of_every_task_on_each_device(task, device, tiny_data, tmp_path):
    assert set(TRAIN) == set(TASKS), "tests/conftest.py TRAIN lists every task"
    cfg = tiny_config(tmp_path, *TRAIN[task][1], f"trainer.accelerator={device}", "+trainer.limit_train_batches=1",
                      "+trainer.limit_val_batches=1")
    result = TASKS[task].step("train")(cfg, tiny_data / "prepared/manifest.json", tiny_data / "augment",
                                       tmp_path / "model")
    assert result["metrics"] and (tmp_path / "model/run.json").is_file()
    assert all(torch.isfinite(torch.tensor(v)) for k, v in result["metrics"].items() if "loss" in k)
