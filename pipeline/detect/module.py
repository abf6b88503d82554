"""The detector's Lightning module: focal-loss training with a frozen-backbone warm-up, then
discriminative fine-tuning (as the classifier); validation mAP with torchmetrics."""

from __future__ import annotations

from dataclasses import asdict

import lightning as L
import torch
from torch import nn
from torchmetrics.detection import MeanAveragePrecision

from pipeline.detect.coding import BoxCoder
from pipeline.detect.loss import DetectionLoss
from pipeline.detect.model import SSD
from pipeline.detect.postprocess import detections
from pipeline.detect.scales import TrainingScales, rescale
from pipeline.predict.postprocess import settings
from pipeline.transfer import SeededSteps, TrainingPlan, TransferSchedule


class DetectorModule(SeededSteps, TransferSchedule, L.LightningModule):
    def __init__(self, net: SSD, anchors: torch.Tensor, loss: DetectionLoss, coder: BoxCoder,
                 input_size: tuple[int, int], plan: TrainingPlan, scales: TrainingScales | None = None):
        """``plan.settings``: train.detector (its postprocessing too); ``scales``: the sizes of multi-scale
        training (None: every batch at ``input_size``)."""
        super().__init__()
        self.net, self.loss, self.coder, self.scales = net, loss, coder, scales
        self.register_buffer("anchors", anchors)
        # the per-epoch validation scores the image alone: `flip` (pipeline/detect/views.py) is evaluation's and
        # the bundle's, where it costs one more forward pass per image, not one per epoch
        self.postprocess, self.input_size = settings(asdict(plan.settings.postprocess)), tuple(input_size)
        self.follow(plan)
        self.val_map = MeanAveragePrecision(iou_type="bbox", backend="faster_coco_eval")

    def backbone(self) -> nn.Module:
        return self.net.backbone

    def forward(self, images: torch.Tensor):
        return self.net(images)

    def shared_step(self, batch: dict, split: str, anchors: torch.Tensor | None = None, levels=None):
        logits, deltas = self.net(batch["images"])
        parts = self.loss(logits, deltas, batch["boxes"], batch["labels"], anchors, levels)
        n = len(batch["images"])
        for name in ("loss", "classification", "localisation"):
            self.log(f"{split}_{name}" if name != "loss" else f"{split}_loss", parts[name], on_step=False,
                     on_epoch=True, prog_bar=name == "loss", batch_size=n)
        return parts["loss"], logits, deltas

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if self.scales is None:
            return self.shared_step(batch, "train")[0]
        size = self.scales.draw()
        anchors, levels = self.scales.anchors(size, self.anchors.device)
        return self.shared_step(rescale(batch, size), "train", anchors, levels)[0]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        _, logits, deltas = self.shared_step(batch, "val")
        found = detections(logits.float(), deltas.float(), self.anchors, self.coder, self.input_size,
                           **self.postprocess)  # decoded in float32 (see DetectionLoss)
        self.val_map.update(found, [{"boxes": b, "labels": lab} for b, lab in zip(batch["boxes"], batch["labels"])])

    def on_validation_epoch_end(self) -> None:
        result = self.val_map.compute()
        self.log("val_map_50", result["map_50"], prog_bar=True)
        self.log("val_map", result["map"])
        self.val_map.reset()
