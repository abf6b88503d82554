"""An exponential moving average of the weights (EMA), as detection references train with
(YOLOv5's ModelEMA, timm's ModelEmaV2): validation, the checkpoints and so the exported model use
the average, which on a small dataset varies less from epoch to epoch than the weights of any one
step, and so holds better on photos that neither the training nor the validation saw.

Lightning's WeightAveraging keeps the average (swapped in for validation, saved as the checkpoint's
``state_dict``, the weights being trained kept beside it for a resume). Its EMA decays at a
constant rate; here the rate comes from a horizon in epochs (a training of a few hundred steps
needs a shorter memory than 0.999's thousand steps), and it warms up as YOLOv5's does, so that the
first steps' weights (random heads) do not linger in the average.
"""

from __future__ import annotations

import math

import torch
from lightning.pytorch.callbacks import WeightAveraging
from torch.optim.swa_utils import get_ema_multi_avg_fn


def ema_decay(horizon_epochs: float, steps_per_epoch: int) -> float:
    """The per-step decay whose average spans about ``horizon_epochs`` epochs (1 / (1 - decay) steps)."""
    if horizon_epochs <= 0:
        raise ValueError(f"ema_epochs: {horizon_epochs} is not a horizon in epochs; give a positive number or null")
    return 1.0 - 1.0 / max(horizon_epochs * steps_per_epoch, 1.0)


class ExponentialMovingAverage(WeightAveraging):
    """EMA of the weights and buffers (batch-norm statistics too) after every optimizer step, with
    decay ``decay * (1 - exp(-updates / warmup))``."""

    def __init__(self, decay: float, warmup_steps: float):
        self.decay, self.warmup_steps = decay, warmup_steps
        super().__init__(use_buffers=True, multi_avg_fn=self.average)

    def average(self, averaged: list[torch.Tensor], current: list[torch.Tensor], updates: torch.Tensor) -> None:
        """One update, in place, of a group of tensors of one dtype on one device: torch's EMA update at this
        step's decay, one fused kernel for the group rather than a few per tensor (the detector has a few
        hundred tensors: per tensor, the update costs several times more on a CPU, a launch each on a GPU)."""
        done = int(self._average_model.n_averaged)  # ``updates`` on the host: reading it from a GPU would wait for it
        decay = self.decay * (1.0 - math.exp(-done / self.warmup_steps))
        get_ema_multi_avg_fn(decay)(averaged, current, updates)

    def on_train_start(self, trainer, pl_module) -> None:
        """The average sits on the training's device and starts from the weights the training starts
        from: the learning-rate finder's trial steps (run before, their weights then put back) are not in it."""
        if self._average_model is None:
            return
        # Lightning makes the average before the model reaches its device: moved there now, so that
        # no step copies the weights between a GPU and the host. Its count of updates stays on the host,
        # where torch's AveragedModel reads it at every update (on a GPU each read would wait for the step).
        self._average_model.to(pl_module.device)
        updates = self._average_model.n_averaged
        if not trainer.ckpt_path:  # a resume goes on from the count its checkpoint holds
            self._average_model.module.load_state_dict(pl_module.state_dict())
            updates = torch.zeros_like(updates, device="cpu")
        self._average_model.n_averaged = updates.cpu()
