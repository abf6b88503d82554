"""The detector's loss (fast.ai's SSD lesson / RetinaNet): sigmoid focal loss without a background class,
plus a localisation loss on the positives, both divided by the number of positive anchors.

With ``classification: quality`` the class target of a positive anchor is the IoU of its predicted box
with its object (Generalized Focal Loss's quality focal loss), so a detection's score ranks how well it
fits: NMS keeps the tighter of two boxes and mAP@[.5:.95] counts it. torchvision has the focal loss but
not this one, hence the few lines below."""

from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from pipeline.detect.coding import BoxCoder
from pipeline.detect.matching import IGNORED, atss_anchors, match_anchors
from pipeline.detect.settings import LossSettings, Matching

LOCALISATION = ("smooth_l1", "l1", "giou")
CLASSIFICATION = ("focal", "quality")
ASSIGNERS = ("iou", "atss")


class DetectionLoss(nn.Module):
    """A module so that its anchors (a buffer) follow the detector to its device."""

    def __init__(self, anchors: torch.Tensor, num_classes: int, coder: BoxCoder, loss: LossSettings,
                 matching: Matching, levels: Sequence[int] | None = None):
        """``loss``, ``matching``: `train.detector.loss` and `train.detector.matching`; ``levels``: the
        anchor count of each feature level (the ``atss`` assigner needs them)."""
        if matching.assigner not in ASSIGNERS:
            raise ValueError(f"train.detector.matching.assigner: {matching.assigner!r} is not one of {ASSIGNERS}")
        if matching.assigner == "atss" and levels is None:
            raise ValueError("matching: the atss assigner needs the anchor count of each feature level")
        if loss.localisation not in LOCALISATION:
            raise ValueError(f"train.detector.loss.localisation: {loss.localisation!r} is not one of {LOCALISATION}")
        if loss.classification not in CLASSIFICATION:
            raise ValueError(f"train.detector.loss.classification: {loss.classification!r} is not one of "
                             f"{CLASSIFICATION}")
        super().__init__()
        self.register_buffer("anchors", anchors, persistent=False)  # the detector's checkpoint holds them once
        self.num_classes, self.coder = num_classes, coder
        self.alpha, self.gamma = loss.alpha, loss.gamma
        self.localisation, self.box_weight = loss.localisation, loss.box_weight
        self.classification = loss.classification
        self.levels = None if levels is None else tuple(levels)
        if matching.assigner == "atss":
            self.match = partial(atss_anchors, topk=matching.topk)
        else:
            iou = partial(match_anchors, positive_iou=matching.positive_iou, negative_iou=matching.negative_iou)
            self.match = lambda boxes, anchors, levels: iou(boxes, anchors)

    def targets(self, boxes: list[torch.Tensor], labels: list[torch.Tensor], anchors: torch.Tensor | None = None,
                levels: Sequence[int] | None = None):
        """Per image: class targets (A x K, all zero for background), box targets, and masks."""
        if anchors is None:
            anchors, levels = self.anchors, self.levels
        cls, box, positive, scored = [], [], [], []
        for b, lab in zip(boxes, labels):
            matched = self.match(b, anchors, levels=levels)
            pos = matched >= 0
            # gathered for every anchor and masked, not indexed by the mask: per image, nothing is read back
            # from a GPU (the counts of boxes are known on the host)
            if len(b):
                onehot = F.one_hot(lab.long()[matched.clamp(min=0)], self.num_classes).float() * pos.unsqueeze(1)
            else:
                onehot = torch.zeros(len(anchors), self.num_classes, device=anchors.device)
            assigned = b.float()[matched.clamp(min=0)] if len(b) else torch.zeros_like(anchors)
            cls.append(onehot), box.append(assigned), positive.append(pos), scored.append(matched != IGNORED)
        return torch.stack(cls), torch.stack(box), torch.stack(positive), torch.stack(scored)

    def forward(self, class_logits: torch.Tensor, box_deltas: torch.Tensor, boxes: list[torch.Tensor],
                labels: list[torch.Tensor], anchors: torch.Tensor | None = None,
                levels: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
        """class_logits: B x A x K, box_deltas: B x A x 4; boxes/labels: one tensor per image; ``anchors``
        and their per-level counts ``levels``: those of another input size (multi-scale training), else
        the input size's."""
        # in float32 under mixed precision too: bf16 keeps 8 bits of a box's pixel coordinates (a 300 px
        # corner to the nearest 2 px) and sums of thousands of anchors' terms lose the small ones
        class_logits, box_deltas = class_logits.float(), box_deltas.float()
        if anchors is None:
            anchors, levels = self.anchors, self.levels
        cls_t, box_t, positive, scored = self.targets(boxes, labels, anchors, levels)
        n = positive.sum().clamp(min=1).float()
        anchors = anchors.float().expand_as(box_deltas)[positive]
        decoded = self.classification == "quality" or self.localisation == "giou"
        predicted = self.coder.decode(box_deltas[positive], anchors) if decoded else None
        if self.classification == "quality":
            cls_t = cls_t.clone()
            cls_t[positive] *= paired_iou(predicted.detach(), box_t[positive]).clamp(min=0).unsqueeze(1)
            classification = quality_focal_loss(class_logits[scored], cls_t[scored], self.gamma) / n
        else:
            classification = sigmoid_focal_loss(class_logits[scored], cls_t[scored], self.alpha, self.gamma,
                                                reduction="sum") / n
        if self.localisation == "giou":
            localisation = generalized_box_iou_loss(predicted, box_t[positive], reduction="sum") / n
        else:
            target = self.coder.encode(box_t[positive], anchors)
            loss = F.smooth_l1_loss if self.localisation == "smooth_l1" else F.l1_loss
            localisation = loss(box_deltas[positive], target, reduction="sum") / n
        total = classification + self.box_weight * localisation
        return {"loss": total, "classification": classification, "localisation": localisation, "positives": n}


def paired_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of a[i] with b[i] (N x 4 each, x1 y1 x2 y2); torchvision's box_iou pairs every box with every box."""
    lt, rb = torch.maximum(a[:, :2], b[:, :2]), torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    union = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(dim=1) + (b[:, 2:] - b[:, :2]).clamp(min=0).prod(dim=1) - inter
    return inter / union.clamp(min=1e-6)


def quality_focal_loss(logits: torch.Tensor, targets: torch.Tensor, beta: float) -> torch.Tensor:
    """Sum of |target - p|^beta * BCE(p, target): targets in [0, 1], the focal term of a soft label."""
    p = torch.sigmoid(logits)
    return (F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * (p - targets).abs().pow(beta)).sum()
