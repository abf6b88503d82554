"""From head outputs to detections: sigmoid scores, score threshold, top-k, per-class NMS
(torchvision.ops.batched_nms), at most ``max_detections`` per image."""

from __future__ import annotations

import torch
from torchvision.ops import batched_nms, clip_boxes_to_image

from pipeline.detect.coding import BoxCoder


def detections(class_logits: torch.Tensor, box_deltas: torch.Tensor, anchors: torch.Tensor, coder: BoxCoder,
               image_size: tuple[int, int], score_threshold: float, nms_iou: float, top_k: int,
               max_detections: int) -> list[dict[str, torch.Tensor]]:
    """Per image: boxes (xyxy, input pixels), scores and labels, best first (train.detector.postprocess)."""
    width, height = image_size
    out = []
    for logits, deltas in zip(class_logits, box_deltas):
        scores = torch.sigmoid(logits).flatten()  # every (anchor, class) pair is a candidate
        keep = torch.nonzero(scores > score_threshold).squeeze(1)
        keep = keep[scores[keep].argsort(descending=True)[:top_k]]
        anchor_index, labels = keep // logits.shape[1], keep % logits.shape[1]
        boxes = clip_boxes_to_image(coder.decode(deltas[anchor_index], anchors[anchor_index]), (height, width))
        kept = batched_nms(boxes, scores[keep], labels, nms_iou)[:max_detections]
        out.append({"boxes": boxes[kept], "scores": scores[keep][kept], "labels": labels[kept]})
    return out
