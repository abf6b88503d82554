"""The detector's outputs on an image, and on its mirror image too (`train.detector.postprocess.flip`).

Each level's anchors lie on a grid that is symmetric about the input's vertical centre line, so every
anchor has a twin of the same size and shape at its mirrored position (same row and place in the cell,
column ``cols - 1 - c``). With ``flip`` the network also sees the mirrored input, and each anchor's class
scores and decoded box are averaged with those its twin gave there (the box mirrored back): test-time
augmentation that keeps one candidate per anchor, so NMS and box voting see no near-duplicates of a
second view. (Pooling both views' candidates before NMS, as Ultralytics' `augment` does, lowered one
raccoon model's test mAP@0.5 by 0.04: docs/benchmarks.md.) torchvision has no
test-time augmentation for detection, hence this module.
"""

from __future__ import annotations

import albumentations as A
import torch

from pipeline.detect.coding import BoxCoder
from pipeline.detect.postprocess import select
from pipeline.devices import module_device
from pipeline.predict.postprocess import check_flip, settings

MIRRORING = (A.HorizontalFlip, A.D4, A.SquareSymmetry)  # training transforms that show objects mirrored


def mirrors(pipeline) -> bool:
    """Whether an albumentations pipeline (nested Compose / OneOf included) may mirror an image left to
    right: a model trained without that has never seen its objects mirrored (text, arrows, hands)."""
    pending = [pipeline]
    while pending:
        transform = pending.pop()
        if isinstance(transform, MIRRORING) and transform.p > 0:
            return True
        pending += list(getattr(transform, "transforms", ()))
    return False


def resolved_flip(flip, training_pipeline) -> bool:
    """``flip`` as trained: auto is true where the training augmentation mirrors images."""
    check_flip(flip)
    return mirrors(training_pipeline) if flip == "auto" else flip


def twin_order(grids, per_cell: int) -> torch.Tensor:
    """For each anchor (in make_anchors' order: level, row, column, anchor of the cell), the index of its
    mirror-image twin."""
    parts, offset = [], 0
    for rows, cols in grids:
        row, col, k = torch.meshgrid(torch.arange(rows), torch.arange(cols), torch.arange(per_cell), indexing="ij")
        parts.append(offset + ((row * cols + cols - 1 - col) * per_cell + k).flatten())
        offset += rows * cols * per_cell
    return torch.cat(parts)


def mirrored(boxes: torch.Tensor, width: float) -> torch.Tensor:
    """xyxy boxes mirrored about the vertical centre line of an input ``width`` wide."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack([width - x1, y0, width - x0, y1], -1)


def scores_and_boxes(net, images: torch.Tensor, anchors: torch.Tensor, coder: BoxCoder,
                     twins: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sigmoid class scores (B x A x K) and decoded boxes (B x A x 4, xyxy input pixels), in float32; with
    ``twins`` (:func:`twin_order`) averaged with the mirror image's, both views in one batch."""
    if twins is None:
        logits, deltas = net(images)
        return torch.sigmoid(logits.float()), coder.decode(deltas.float(), anchors)
    logits, deltas = net(torch.cat([images, images.flip(-1)]))
    scores, boxes = torch.sigmoid(logits.float()), coder.decode(deltas.float(), anchors)
    count = images.shape[0]
    other_scores = scores[count:, twins]
    other_boxes = mirrored(boxes[count:], images.shape[-1])[:, twins]
    return (scores[:count] + other_scores) / 2, (boxes[:count] + other_boxes) / 2


class Detector:
    """A trained detector as a function from a batch of input images (B x 3 x H x W, uint8, on any
    device) to each image's detections (boxes in input pixels, scores, labels), with the post-processing
    it was trained with (model.json's ``postprocess``)."""

    def __init__(self, net, anchors: torch.Tensor, coder: BoxCoder, info: dict):
        device = module_device(net)
        self.net, self.coder, self.anchors = net, coder, anchors.to(device)
        self.input_size, self.post = tuple(info["input_size"]), settings(info["postprocess"])
        check_flip(info["postprocess"]["flip"])
        self.twins = twin_order(net.grids, net.per_cell).to(device) if info["postprocess"]["flip"] else None

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        images = images.to(self.anchors.device, non_blocking=True)
        return select(*scores_and_boxes(self.net, images, self.anchors, self.coder, self.twins), self.input_size,
                      **self.post)
