"""The multi-label Lightning module: the classifier's network and transfer schedule, with one
sigmoid per class, binary cross-entropy and mean average precision over classes."""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torchmetrics.classification import MultilabelAveragePrecision, MultilabelF1Score

from pipeline.models.classifier import ClassifierNet
from pipeline.transfer import HeadOnFeatures, SeededSteps, TrainingPlan, TransferSchedule


class MultiLabelModule(SeededSteps, TransferSchedule, HeadOnFeatures, L.LightningModule):
    # every setting comes from conf/ (train.multilabel) through pipeline.multilabel.train
    def __init__(self, net: ClassifierNet, classes: list[str], plan: TrainingPlan, pos_weight: torch.Tensor | None):
        super().__init__()
        self.net, self.classes = net, list(classes)
        self.follow(plan)
        self.loss = nn.BCEWithLogitsLoss(pos_weight=pos_weight)  # a buffer: follows the module's device
        k = len(self.classes)
        self.metrics = nn.ModuleDict({
            f"{split}_{name}": metric
            for split in ("train", "val")
            for name, metric in (("map", MultilabelAveragePrecision(k, average="macro")),
                                 ("f1", MultilabelF1Score(k, average="macro")))
        })

    def shared_step(self, batch: dict, split: str) -> torch.Tensor:
        logits = self.logits(batch)
        targets = batch["labels"].float()
        loss = self.loss(logits, targets)
        self.log(f"{split}_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(targets))
        for name in ("map", "f1"):
            metric = self.metrics[f"{split}_{name}"]
            metric(logits.sigmoid(), targets.int())
            self.log(f"{split}_{name}", metric, on_step=False, on_epoch=True, prog_bar=name == "map")
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self.shared_step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.shared_step(batch, "val")
