"""From head outputs to detections: sigmoid scores, score threshold, top-k, per-class NMS
(torchvision.ops.batched_nms), at most ``max_detections`` per image, then box voting. (With
``flip``, pipeline/detect/views.py averages the scores and boxes of two views before this.)

Box voting (Gidaris and Komodakis 2015; YOLOv5's merge-NMS is the case vote_iou = nms_iou, power 1):
each kept box becomes the score-weighted mean of the candidates of its class that overlap it. A
trained SSD's neighbouring anchors each regress the same object slightly off; their consensus is
tighter than the single best-scoring box (mAP@0.75 and mAP@[.5:.95] on raccoon's test split, BCCD
and the built-in data: docs/benchmarks.md). torchvision has NMS but no voting, hence :func:`vote`.
"""

from __future__ import annotations

import torch
from torchvision.ops import batched_nms, box_iou, clip_boxes_to_image

from pipeline.detect.coding import BoxCoder
from pipeline.predict.postprocess import check_voting


def vote(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, kept: torch.Tensor, vote_iou: float,
         vote_power: float) -> torch.Tensor:
    """Each kept box moved to the mean of the candidates of its class that overlap it by more than
    ``vote_iou`` (itself included), each weighted by its score ** ``vote_power``."""
    voters = (box_iou(boxes[kept], boxes) > vote_iou) & (labels[kept, None] == labels[None, :])
    voters[torch.arange(len(kept), device=kept.device), kept] = True  # a degenerate box's IoU is NaN
    weights = voters * scores[None, :] ** vote_power
    total = weights.sum(1, keepdim=True)
    merged = (weights @ boxes) / total.clamp_min(torch.finfo(boxes.dtype).tiny)
    return torch.where(total > 0, merged, boxes[kept])  # scores that underflow at a high power: as it was


def select(scores: torch.Tensor, boxes: torch.Tensor, image_size: tuple[int, int], score_threshold: float,
           nms_iou: float, top_k: int, max_detections: int, vote_iou: float | None,
           vote_power: float) -> list[dict[str, torch.Tensor]]:
    """Per image of ``scores`` (B x A x K, sigmoid) and ``boxes`` (B x A x 4, decoded, input pixels): boxes
    (xyxy, clipped to the input), scores and labels, best first (train.detector.postprocess; ``vote_iou``
    None: the kept boxes as they are)."""
    check_voting(vote_iou, vote_power)
    width, height = image_size
    out = []
    for image_scores, image_boxes in zip(scores, boxes):
        flat = image_scores.flatten()  # every (anchor, class) pair is a candidate
        keep = torch.nonzero(flat > score_threshold).squeeze(1)
        keep = keep[flat[keep].argsort(descending=True)[:top_k]]
        anchor_index, labels = keep // image_scores.shape[1], keep % image_scores.shape[1]
        picked = clip_boxes_to_image(image_boxes[anchor_index], (height, width))
        kept = batched_nms(picked, flat[keep], labels, nms_iou)[:max_detections]
        found = picked[kept] if vote_iou is None else vote(picked, flat[keep], labels, kept, vote_iou, vote_power)
        out.append({"boxes": found, "scores": flat[keep][kept], "labels": labels[kept]})
    return out


def detections(class_logits: torch.Tensor, box_deltas: torch.Tensor, anchors: torch.Tensor, coder: BoxCoder,
               image_size: tuple[int, int], score_threshold: float, nms_iou: float, top_k: int,
               max_detections: int, vote_iou: float | None, vote_power: float) -> list[dict[str, torch.Tensor]]:
    """:func:`select` on the head's raw outputs for ``anchors``."""
    return select(torch.sigmoid(class_logits), coder.decode(box_deltas, anchors), image_size, score_threshold,
                  nms_iou, top_k, max_detections, vote_iou, vote_power)
