"""Anchor matching (fast.ai's SSD lesson): IoU of every anchor with every ground-truth box.

Each ground-truth box is forced onto its best anchor (so no object goes unmatched, however
small), every other anchor is positive for its best box when their IoU >= ``positive_iou``,
negative below ``negative_iou``, and ignored in between (an empty band when the two are equal).
"""

from __future__ import annotations

import torch
from torchvision.ops import box_iou

NEGATIVE = -1
IGNORED = -2


def match_anchors(boxes: torch.Tensor, anchors: torch.Tensor, positive_iou: float = 0.5,
                  negative_iou: float = 0.4) -> torch.Tensor:
    """Per anchor: the index of its ground-truth box, NEGATIVE or IGNORED (boxes: G x 4, anchors: A x 4)."""
    if negative_iou > positive_iou:
        raise ValueError(f"matching: negative_iou {negative_iou} is above positive_iou {positive_iou}")
    matched = torch.full((len(anchors),), NEGATIVE, dtype=torch.long, device=anchors.device)
    if len(boxes) == 0:
        return matched
    iou = box_iou(boxes.float().to(anchors.device), anchors.float())  # G x A
    best_iou, best_box = iou.max(dim=0)
    matched[best_iou >= positive_iou] = best_box[best_iou >= positive_iou]
    matched[(best_iou >= negative_iou) & (best_iou < positive_iou)] = IGNORED
    # forced best match: each box takes its best anchor (later boxes win a shared anchor)
    best_anchor = iou.argmax(dim=1)
    matched[best_anchor] = torch.arange(len(boxes), device=anchors.device)
    return matched
