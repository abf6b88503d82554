"""What `auto` resolves to on the machine a stage runs on: loader processes, determinism, the device."""

import pytest
import torch

from pipeline import hardware
from pipeline.devices import accelerator_device, loader_options
from pipeline.hardware import deterministic, loader_workers


@pytest.mark.parametrize(("cores", "workers"), [(1, 0), (2, 0), (3, 2), (4, 3), (16, 8), (64, 8)])
def test_auto_loader_processes_follow_the_cores_this_process_may_use(monkeypatch, cores, workers):
    monkeypatch.delenv(hardware.STAGE_CORES_ENV, raising=False)
    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert loader_workers("auto") == workers
    assert loader_workers(5) == 5  # a count is taken as given


def test_a_stage_run_side_by_side_counts_its_loader_processes_from_its_share_of_the_cores(monkeypatch):
    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.setenv(hardware.STAGE_CORES_ENV, "4")  # `make repro` with 4 stages at a time on 16 cores
    assert (hardware.usable_cores(), loader_workers("auto")) == (4, 3)
    monkeypatch.setenv(hardware.STAGE_CORES_ENV, "32")  # never more than the process may run on
    assert hardware.usable_cores() == 16
    for wrong in ("0", "four", ""):
        monkeypatch.setenv(hardware.STAGE_CORES_ENV, wrong)
        with pytest.raises(ValueError, match=f"{hardware.STAGE_CORES_ENV}={wrong!r}: a count of cores"):
            loader_workers("auto")


def test_loaders_pin_memory_for_a_gpu_and_keep_their_processes_only_when_they_have_some():
    assert loader_options(4, torch.device("cuda")) == {"num_workers": 4, "persistent_workers": True,
                                                       "pin_memory": True}
    assert loader_options(0, torch.device("cpu")) == {"num_workers": 0, "persistent_workers": False,
                                                      "pin_memory": False}
    assert not loader_options(4, torch.device("cpu"), persistent=False)["persistent_workers"]


def test_deterministic_auto_is_true_on_the_cpu_and_false_on_a_gpu():
    assert deterministic("auto", torch.device("cpu")) is True
    assert deterministic("auto", torch.device("cuda", 0)) is False
    assert deterministic("warn", torch.device("cuda", 0)) == "warn"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_asked_for_where_there_is_none_is_one_line_naming_the_fix():
    assert accelerator_device("auto") == torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    with pytest.raises(ValueError, match=r"trainer.accelerator=gpu: this machine has no CUDA GPU .* trainer=cpu"):
        accelerator_device("gpu")
