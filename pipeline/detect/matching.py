"""Anchor matching: which anchors learn which ground-truth box (``train.detector.matching.assigner``).

``iou`` (fast.ai's SSD lesson): each ground-truth box is forced onto its best anchor (so no object
goes unmatched, however small), every other anchor is positive for its best box when their IoU >=
``positive_iou``, negative below ``negative_iou``, and ignored in between (an empty band when the two
are equal).

``atss`` (Zhang et al., "Bridging the Gap Between Anchor-based and Anchor-free Detection via Adaptive
Training Sample Selection", 2020): each box takes, on every feature level, the ``topk`` anchors whose
centres are nearest its centre as candidates, and its own IoU threshold from them (their mean IoU
plus its standard deviation); the candidates at or above it whose centre lies inside the box are
positive, every other anchor negative. Tall thin and small boxes, whose best IoUs are low, keep
positives without a global threshold. torchvision has no anchor assigner of this kind, hence the
lines below.
"""

from __future__ import annotations

from typing import Sequence

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
    # torch.where, not matched[mask] = best_box[mask]: selecting by a mask reads the mask back from a GPU
    matched = torch.where(best_iou >= positive_iou, best_box, matched)
    matched[(best_iou >= negative_iou) & (best_iou < positive_iou)] = IGNORED  # a fill: nothing read back
    # forced best match: each box takes its best anchor (later boxes win a shared anchor)
    best_anchor = iou.argmax(dim=1)
    matched[best_anchor] = torch.arange(len(boxes), device=anchors.device)
    return matched


def atss_anchors(boxes: torch.Tensor, anchors: torch.Tensor, levels: Sequence[int], topk: int) -> torch.Tensor:
    """Per anchor: the index of its ground-truth box or NEGATIVE (boxes: G x 4, anchors: A x 4 ordered
    level by level, ``levels`` the anchor count of each). Each box also keeps its best anchor, as in
    :func:`match_anchors`."""
    if sum(levels) != len(anchors):
        raise ValueError(f"matching: the levels' anchor counts {list(levels)} do not add up to {len(anchors)} anchors")
    if topk < 1:
        raise ValueError(f"train.detector.matching.topk: {topk} must be at least 1")
    matched = torch.full((len(anchors),), NEGATIVE, dtype=torch.long, device=anchors.device)
    if len(boxes) == 0:
        return matched
    boxes, anchors = boxes.float().to(anchors.device), anchors.float()
    iou = box_iou(boxes, anchors)  # G x A
    box_centres, anchor_centres = (boxes[:, :2] + boxes[:, 2:]) / 2, (anchors[:, :2] + anchors[:, 2:]) / 2
    distance = torch.cdist(box_centres, anchor_centres)  # G x A
    candidates, start = [], 0
    for count in levels:
        nearest = distance[:, start:start + count].topk(min(topk, count), dim=1, largest=False).indices
        candidates.append(nearest + start)
        start += count
    candidates = torch.cat(candidates, dim=1)  # G x C
    candidate_iou = iou.gather(1, candidates)
    spread = candidate_iou.std(dim=1).nan_to_num(0.0) if candidates.shape[1] > 1 else 0.0
    threshold = candidate_iou.mean(dim=1) + spread
    is_candidate = torch.zeros_like(iou, dtype=torch.bool).scatter_(1, candidates, True)
    inside = ((anchor_centres[None, :, 0] > boxes[:, None, 0]) & (anchor_centres[None, :, 0] < boxes[:, None, 2])
              & (anchor_centres[None, :, 1] > boxes[:, None, 1]) & (anchor_centres[None, :, 1] < boxes[:, None, 3]))
    positive = is_candidate & inside & (iou >= threshold[:, None])
    best_iou, best_box = torch.where(positive, iou, torch.full_like(iou, -1.0)).max(dim=0)  # an anchor of two boxes
    matched = torch.where(best_iou >= 0, best_box, matched)                                    # takes the closer fit
    matched[iou.argmax(dim=1)] = torch.arange(len(boxes), device=anchors.device)
    return matched
