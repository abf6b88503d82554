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

from pipeline.devices import synchronize


def batch_size(batch) -> int:
    """The number of samples in a batch (a dict of tensors or lists: images, features, boxes ...)."""
    values = batch.values() if isinstance(batch, dict) else batch
    for value in values:
        if isinstance(value, (torch.Tensor, list, tuple)) and len(value):
            return len(value)
    return 0


class Throughput(Callback):
    """Per training step: the wait for its batch (from the end of the previous step, the loader's
    next batch and its copy to the device included) and the step itself (forward, backward,
    optimizer; the device's queue drained at its end, so that the clock measures the work)."""

    def __init__(self):
        self.images = 0
        self.wait = self.work = 0.0
        self.mark: float | None = None

    def summary(self) -> dict:
        total = self.wait + self.work
        return {"throughput_images_per_s": self.images / total if total else 0.0,
                "data_wait_share": self.wait / total if total else 0.0,
                "train_step_seconds": total}

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.mark = time.perf_counter()

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        now = time.perf_counter()
        if self.mark is not None:
            self.wait += now - self.mark
        self.mark = now
        self.images += batch_size(batch)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        synchronize(pl_module.device)
        now = time.perf_counter()
        self.work += now - self.mark
        self.mark = now

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.mark = None  # validation and checkpoints are not waits for training data

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or not self.images:
            return
        figures = self.summary()
        trainer.logger.log_metrics(figures, step=trainer.global_step)
        print(f"training throughput: {figures['throughput_images_per_s']:.1f} images/s, "
              f"{figures['data_wait_share']:.0%} of step time waiting for data "
              f"(device {pl_module.device}, loader processes {getattr(trainer.datamodule, 'num_workers', 0)})")
