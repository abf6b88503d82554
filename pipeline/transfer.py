"""Training parts every task shares: per-step seeding, and transfer learning's schedule (a frozen
backbone first, then all layers with discriminative learning rates, each phase with its own
one-cycle, cosine or constant learning-rate shape)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pipeline.schema import Optimizer, OptimizerName, Schedule


def phase_schedule(kind: str, pct_start: float = 0.25, div: float = 25.0, final_div: float = 1e4):
    """Learning-rate multiplier as a function of progress t in [0, 1] through one phase."""
    def cosine(a: float, b: float, t: float) -> float:
        return b + (a - b) * 0.5 * (1 + math.cos(math.pi * min(max(t, 0.0), 1.0)))

    if kind == "one_cycle":  # fast.ai: warm up from lr/div, anneal to lr/final_div
        return lambda t: (cosine(1 / div, 1.0, t / pct_start) if t < pct_start
                          else cosine(1.0, 1 / final_div, (t - pct_start) / (1 - pct_start)))
    if kind == "cosine":
        return lambda t: cosine(1.0, 1 / final_div, t)
    if kind == "constant":
        return lambda t: 1.0
    raise ValueError(f"train.<model>.schedule: {kind!r} is not one_cycle, cosine or constant")


# The devices torch documents its fused Adam and AdamW kernels for: one vectorised update of every
# parameter instead of torch's default on the CPU, a Python loop over them (each network's step
# 2.5-4.4x faster on 2 CPU cores; `python benchmarks/optimizer_step.py`). Elsewhere torch's default.
FUSED_ADAM_DEVICES = frozenset({"cpu", "cuda"})


def fused_adam_supported(params: list[torch.Tensor]) -> bool:
    return bool(params) and all(p.device.type in FUSED_ADAM_DEVICES and p.is_floating_point() for p in params)


def make_optimizer(spec: Optimizer, groups: list[dict], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """``train.<task>.optimizer``: ``adamw`` (decoupled weight decay), ``adam`` (weight decay as L2 in
    the gradient) or ``sgd`` with momentum; ``momentum`` is SGD's, or the Adams' first beta. The
    Adams run fused where the parameters' device has the kernel."""
    groups = [{**group, "params": [group["params"]] if isinstance(group["params"], torch.Tensor)
               else list(group["params"])} for group in groups]
    if spec.name is OptimizerName.sgd:
        return torch.optim.SGD(groups, lr=lr, momentum=spec.momentum, weight_decay=weight_decay)
    adam = {OptimizerName.adamw: torch.optim.AdamW, OptimizerName.adam: torch.optim.Adam}[spec.name]
    fused = fused_adam_supported([p for group in groups for p in group["params"]])
    return adam(groups, lr=lr, betas=(spec.momentum, 0.999), weight_decay=weight_decay, fused=fused or None)


def group_multipliers(lr_mult, groups: int) -> list[float]:
    """The last ``groups`` of ``lr_mult`` (a list written for a deeper network serves a shallower one);
    too few for the network is an error, never a silent 1.0."""
    if len(lr_mult) < groups:
        raise ValueError(f"lr_mult {list(lr_mult)}: this network trains {groups} parameter groups (backbone early -> "
                         f"late, then the new layers); give at least {groups} multipliers (the last {groups} are used)")
    return list(lr_mult)[len(lr_mult) - groups:]


@dataclass(frozen=True)
class TrainingPlan:
    """A training's course: its settings (`train.<task>`: optimizer, lr, lr_mult, weight decay,
    schedule), the epochs with a frozen backbone (0: none) and in all (what `auto` resolved), the
    optimizer steps per epoch in the frozen phase and after, and the seed of each step's randomness."""

    settings: Schedule
    freeze_epochs: int
    epochs: int
    steps: tuple[int, int]
    seed: int


class SeededSteps:
    """LightningModule mixin: each step's randomness (dropout, random scales) from (seed, epoch,
    step), whatever else drew from the global generator before (loader set-up differs after a resume)."""

    seed: int = 0

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        key = [self.seed, self.current_epoch, batch_idx]
        torch.manual_seed(int(np.random.SeedSequence(key).generate_state(1)[0]))


class TransferSchedule:
    """LightningModule mixin: ``freeze_epochs`` with a frozen backbone (``backbone()``), then all
    layers with discriminative learning rates (``lr_mult`` over ``net.param_groups()``, early ->
    late), each phase with its own one-cycle/cosine/constant schedule.

    Needs: net, and a :class:`TrainingPlan` given to :meth:`follow`. With ``frozen_stem`` (set by
    :meth:`keep_stem_frozen`), the network's stem (``net.stem()``) stays frozen in both phases,
    its batch norms included.
    """

    frozen_stem = False

    def follow(self, plan: TrainingPlan) -> None:
        """Train by ``plan``; ``lr`` and ``freeze_epochs`` stay attributes, which the learning-rate
        finder sets (pipeline.lr_finder)."""
        self.plan, self.seed, self.epochs = plan, plan.seed, plan.epochs
        self.lr, self.freeze_epochs = plan.settings.lr, plan.freeze_epochs

    def on_fit_start(self) -> None:
        """Train in channels-last memory layout: convolutions on CPUs (oneDNN) and GPUs run faster
        in it (`python benchmarks/detector_throughput.py`); the weights saved are the same numbers."""
        self.net.fast_layout()

    def backbone(self) -> nn.Module:
        return self.net.features

    def keep_stem_frozen(self, frozen: bool, setting: str) -> None:
        """``setting``: the config key, named when the network has no stem this pipeline knows."""
        if frozen and not self.net.stem():
            raise ValueError(f"{setting}: this backbone has no stem the pipeline knows (EfficientNets and ResNets "
                             f"have one); set {setting}=false")
        self.frozen_stem = frozen

    def frozen(self, epoch: int | None = None) -> bool:
        return (self.current_epoch if epoch is None else epoch) < self.freeze_epochs

    def set_backbone_trainable(self, trainable: bool) -> None:
        for p in self.backbone().parameters():
            p.requires_grad_(trainable)
        self.backbone().train(trainable and self.training)
        if self.frozen_stem:  # pretrained edge filters, kept; no backward at full resolution
            for layer in self.net.stem():
                layer.requires_grad_(False)
                layer.eval()

    def on_train_epoch_start(self) -> None:
        self.set_backbone_trainable(not self.frozen())

    def configure_optimizers(self):
        plan, settings = self.plan, self.plan.settings
        groups = self.net.param_groups()
        mults = group_multipliers(settings.lr_mult, len(groups))
        optimizer = make_optimizer(settings.optimizer, [{"params": params, "lr": self.lr * m}
                                                        for params, m in zip(groups, mults)],
                                   self.lr, settings.weight_decay)
        shape = phase_schedule(settings.schedule)
        frozen_steps = self.freeze_epochs * plan.steps[0]
        tuned_steps = max(1, (plan.epochs - self.freeze_epochs) * plan.steps[1])

        def multiplier(step: int) -> float:
            if step < frozen_steps:
                return shape(step / frozen_steps)
            return shape((step - frozen_steps) / tuned_steps)

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class HeadOnFeatures:
    """LightningModule mixin: the network's logits for a batch of images, or for the backbone's
    cached features (the frozen phase trains the head on those)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def logits(self, batch: dict) -> torch.Tensor:
        if "features" in batch:
            return self.net.head(batch["features"])
        return self.net(batch["images"])
