"""The training throughput callback (pipeline/throughput.py): images per second and the share of step
time spent waiting for data, on the device's clock, without making the host wait for a GPU each step."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from pipeline.throughput import HostClock, Throughput, device_clock


class DeviceEvents:
    """A stand-in for torch.cuda.Event on a machine without a GPU: the device's time is set by the test."""
    now = 0.0
    log: list[str] = []

    def __init__(self, enable_timing: bool = False):
        assert enable_timing
        self.at = None

    def record(self, stream=None):
        self.at = DeviceEvents.now
        DeviceEvents.log.append("record")

    def synchronize(self):
        DeviceEvents.log.append("wait")

    def elapsed_time(self, end) -> float:
        return (end.at - self.at) * 1000.0


@pytest.fixture
def gpu(monkeypatch):
    DeviceEvents.now, DeviceEvents.log = 0.0, []
    monkeypatch.setattr(torch.cuda, "Event", DeviceEvents)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a, **k: DeviceEvents.log.append("wait"))
    logged = []
    trainer = SimpleNamespace(is_global_zero=True, global_step=3, datamodule=None,
                              logger=SimpleNamespace(log_metrics=lambda figures, step: logged.append(figures)))
    return trainer, SimpleNamespace(device=torch.device("cuda", 0)), logged


def test_on_a_gpu_steps_are_timed_by_events_read_once_an_epoch_and_the_host_never_waits_per_step(gpu):
    trainer, module, logged = gpu
    callback, batch = Throughput(), {"images": torch.zeros(4, 3, 8, 8)}

    def at(t, hook, *args):
        DeviceEvents.now = t
        getattr(callback, hook)(trainer, module, *args)

    # the device's timeline: (wait 1, work 2), (wait 0.5, work 1.5); validation 5-10; then (wait 0.25, work 0.75)
    at(0.0, "on_train_epoch_start")
    for start, end in ((1.0, 3.0), (3.5, 5.0)):
        at(start, "on_train_batch_start", batch, 0)
        at(end, "on_train_batch_end", None, batch, 0)
    assert "wait" not in DeviceEvents.log and DeviceEvents.log.count("record") == 5
    at(5.0, "on_train_epoch_end")
    assert "wait" in DeviceEvents.log  # read once the epoch's steps are queued
    at(10.0, "on_train_epoch_start")
    at(10.25, "on_train_batch_start", batch, 0)
    at(11.0, "on_train_batch_end", None, batch, 0)
    at(11.0, "on_train_epoch_end")
    callback.on_fit_end(trainer, module)
    assert logged == [{"throughput_images_per_s": pytest.approx(12 / 6.0), "data_wait_share": pytest.approx(1.75 / 6.0),
                       "train_step_seconds": pytest.approx(6.0)}]


def test_the_clock_follows_the_training_device():
    assert isinstance(device_clock(torch.device("cpu")), HostClock)
    assert device_clock(torch.device("cuda", 0)).event_type is torch.cuda.Event


class SlowSamples(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        import time
        time.sleep(0.05)  # the loader, not the step, takes the time
        return torch.full((4,), float(i))


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_a_training_on_the_cpu_that_waits_for_its_loader_says_so(tmp_path, capsys):
    callback = Throughput()
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[callback],
                        default_root_dir=str(tmp_path))
    trainer.fit(Tiny(), DataLoader(SlowSamples(), batch_size=4))
    figures = callback.summary()
    assert callback.images == 16
    assert figures["data_wait_share"] > 0.8  # 0.2 s of loading per batch against a step of a few ms
    assert figures["train_step_seconds"] >= 0.75 and 16 / figures["train_step_seconds"] == pytest.approx(
        figures["throughput_images_per_s"])
