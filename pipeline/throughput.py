"""How fast a training consumes images, and how much of its time it waits for them.

Lightning's ``ThroughputMonitor`` counts samples per second but not the time the device sits idle
while the loader prepares the next batch, the figure that says whether more loader processes
(``train.<model>.num_workers``) would help. This callback measures both in every training, logs
them to its MLflow run (``throughput_images_per_s``, ``data_wait_share``) and prints them.
"""

from __future__ import annotations

import time

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


def batch_size(batch) -> int:
    """The number of samples in a batch (a dict of tensors or lists: images, features, boxes ...)."""
    values = batch.values() if isinstance(batch, dict) else batch
    for value in values:
        if isinstance(value, (torch.Tensor, list, tuple)) and len(value):
            return len(value)
    return 0


class HostClock:
    """The CPU's clock: a CPU's work is done when the call that does it returns."""

    def stamp(self) -> float:
        return time.perf_counter()

    def seconds(self, start: float, end: float) -> float:
        return end - start


class StreamClock:
    """A GPU's clock: events recorded on the device's stream, in order with its work, timestamped when the
    device reaches them. Reading them waits for the device once, at an epoch's end: a wait after every
    step would keep the host from queueing the next step's work while the device runs this one."""

    def __init__(self, event_type):
        self.event_type = event_type  # torch.cuda.Event or torch.mps.event.Event

    def stamp(self):
        event = self.event_type(enable_timing=True)
        event.record()
        return event

    def seconds(self, start, end) -> float:
        end.synchronize()
        return start.elapsed_time(end) / 1000.0


def device_clock(device: torch.device) -> HostClock | StreamClock:
    if device.type == "cuda":
        return StreamClock(torch.cuda.Event)
    if device.type == "mps":
        return StreamClock(torch.mps.event.Event)
    return HostClock()


class Throughput(Callback):
    """Per training step, on the device's clock: the wait for its batch (from the end of the previous
    step's work to the start of this one's: the loader's next batch, its copy to the device, and
    whatever else the host did) and the step's work (forward, backward, optimizer)."""

    def __init__(self, clock: HostClock | StreamClock | None = None):
        self.clock = clock  # None: the training device's, at the first epoch's start
        self.images = 0
        self.wait = self.work = 0.0
        self.stamps: list = []  # this epoch's: its start, then each step's start and end

    def summary(self) -> dict:
        self.settle()
        total = self.wait + self.work
        return {"throughput_images_per_s": self.images / total if total else 0.0,
                "data_wait_share": self.wait / total if total else 0.0,
                "train_step_seconds": total}

    def settle(self) -> None:
        """Add the stamped steps' waits and work to the totals (on a GPU: one wait for its queue)."""
        marks, self.stamps = self.stamps, []
        for i in range(1, len(marks) - 1, 2):
            self.wait += self.clock.seconds(marks[i - 1], marks[i])
            self.work += self.clock.seconds(marks[i], marks[i + 1])

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.clock is None:
            self.clock = device_clock(pl_module.device)
        self.stamps = [self.clock.stamp()]

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        if self.stamps:
            self.stamps.append(self.clock.stamp())
            self.images += batch_size(batch)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        if self.stamps:
            self.stamps.append(self.clock.stamp())

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.settle()  # validation and checkpoints are not waits for training data

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        figures = self.summary()
        if not trainer.is_global_zero or not self.images:
            return
        if trainer.logger is not None:
            trainer.logger.log_metrics(figures, step=trainer.global_step)
        print(f"training throughput: {figures['throughput_images_per_s']:.1f} images/s, "
              f"{figures['data_wait_share']:.0%} of step time waiting for data "
              f"(device {pl_module.device}, loader processes {getattr(trainer.datamodule, 'num_workers', 0)})")
