"""The classifier's Lightning module: frozen-backbone phase on cached features, then discriminative
fine-tuning (pipeline/transfer.py)."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from pipeline.models.classifier import ClassifierNet
from pipeline.transfer import HeadOnFeatures, SeededSteps, TrainingPlan, TransferSchedule


def class_weights(mode, counts: np.ndarray) -> torch.Tensor | None:
    """``auto``: inverse class frequency (N / (K * n_k)), as in the hotdog example; a list: as given."""
    if mode in (None, "none", False):
        return None
    if mode == "auto":
        counts = np.maximum(counts, 1)
        return torch.tensor(counts.sum() / (len(counts) * counts), dtype=torch.float32)
    weights = [float(w) for w in mode]
    if len(weights) != len(counts):
        raise ValueError(f"train.classifier.class_weights: {len(weights)} weights for {len(counts)} classes")
    return torch.tensor(weights, dtype=torch.float32)


class ClassifierModule(SeededSteps, TransferSchedule, HeadOnFeatures, L.LightningModule):
    # every setting comes from conf/ (train.classifier) through pipeline.classify.train: no defaults here
    def __init__(self, net: ClassifierNet, classes: list[str], plan: TrainingPlan, weights: torch.Tensor | None):
        """``plan.settings``: train.classifier (its label smoothing too); ``weights``: per class, or None."""
        super().__init__()
        self.net, self.classes = net, list(classes)
        self.follow(plan)
        self.loss = nn.CrossEntropyLoss(weight=weights, label_smoothing=plan.settings.label_smoothing)
        k = len(self.classes)
        self.metrics = nn.ModuleDict({
            f"{split}_{name}": metric
            for split in ("train", "val")
            for name, metric in (("acc", MulticlassAccuracy(k, average="micro")),
                                 ("f1", MulticlassF1Score(k, average="macro")))
        })

    # --- steps ------------------------------------------------------------------------------
    def shared_step(self, batch: dict, split: str) -> torch.Tensor:
        logits = self.logits(batch)
        labels = batch["labels"]
        loss = self.loss(logits, labels)
        self.log(f"{split}_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(labels))
        for name in ("acc", "f1"):
            metric = self.metrics[f"{split}_{name}"]
            metric(logits, labels)
            self.log(f"{split}_{name}", metric, on_step=False, on_epoch=True, prog_bar=name == "acc")
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self.shared_step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.shared_step(batch, "val")
