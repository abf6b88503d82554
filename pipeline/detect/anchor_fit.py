"""Anchors fitted to the user's boxes (``model.detector.anchors.fit``), the idea of YOLOv5's
autoanchor for SSD's anchor layout: the aspect ratios are the centres of a k-means of the boxes'
log aspect ratios (as many as the preset has), the per-level sizes are spaced geometrically between
a low percentile of the boxes' sizes and a large size, linearly or geometrically (the candidate
that covers the most boxes wins).

Quality is what the matcher sees: the boxes of the training and validation splits at the network's
input size, against the real anchors (every cell of every level). The best possible recall is the
share of boxes that some anchor overlaps with IoU >= ``positive_iou``; the mean best IoU says how
well. Candidates are ranked by their fitness, YOLOv5's: the mean over boxes of the best IoU where
it reaches ``positive_iou`` (0 elsewhere), which rewards both, taken per class and averaged over
the classes as mAP is: a rare class of small objects (BCCD's platelets, 7 % of its boxes) would
otherwise get no anchor of its size, as the common classes outvote it. The fit is used only when its
fitness is at least the preset's; both are reported.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch
from torchvision.ops import box_iou

from pipeline.detect.anchors import AnchorSpec, geometric_sizes, linear_sizes, make_anchors

SMALLEST = (1, 5, 10, 25)  # percentiles of the boxes' sizes the finest level's anchors may start at
LARGEST = (0.6, 0.8, 0.95)  # the coarsest level's size (fractions of the image); also the boxes' 99th percentile
SEARCH_BOXES = 2000  # boxes the search scores candidates on (all of them score the result)


def coverage(boxes: list[torch.Tensor], labels: list[torch.Tensor], anchors: torch.Tensor,
             positive_iou: float) -> dict[str, float]:
    """Best possible recall and mean best IoU of ``boxes`` (per image, xyxy input pixels), the
    fitness (averaged over the classes of ``labels``) and the lowest recall of a class."""
    best = torch.cat([box_iou(b, anchors.to(b.device)).max(dim=1).values for b in boxes if len(b)])
    classes = torch.cat([lab.to(best.device) for b, lab in zip(boxes, labels) if len(b)])
    matched = best >= positive_iou
    present = classes.unique()
    return {"recall": float(matched.float().mean()), "mean_iou": float(best.mean()),
            "fitness": float(torch.stack([(best * matched)[classes == c].mean() for c in present]).mean()),
            "worst_class_recall": float(min(matched[classes == c].float().mean() for c in present))}


def kmeans_ratios(log_ratios: np.ndarray, k: int, iterations: int = 50) -> tuple[float, ...]:
    centres = np.quantile(log_ratios, (np.arange(k) + 0.5) / k)
    for _ in range(iterations):
        nearest = np.abs(log_ratios[:, None] - centres[None]).argmin(1)
        centres = np.array([log_ratios[nearest == j].mean() if np.any(nearest == j) else centres[j]
                            for j in range(k)])
    return tuple(sorted({round(float(math.exp(c)), 3) for c in centres}))


def fitted_specs(boxes: torch.Tensor, preset: AnchorSpec, levels: int, input_size: tuple[int, int]):
    """Candidate specs: the fitted ratios or the preset's, with per-level sizes spaced linearly or
    geometrically from a low percentile of the boxes' sizes to a large size (the coarse levels sit
    on few cells: their anchors must be large to reach boxes away from the centre)."""
    width, height = input_size
    w = (boxes[:, 2] - boxes[:, 0]).clamp(min=1e-3).cpu().numpy() / width
    h = (boxes[:, 3] - boxes[:, 1]).clamp(min=1e-3).cpu().numpy() / height
    side = np.sqrt(w * h)
    largest = sorted({*LARGEST, round(float(np.percentile(side, 99)), 4)})
    for ratios in dict.fromkeys([kmeans_ratios(np.log(w / h), len(preset.ratios)), preset.ratios]):
        for low in SMALLEST:
            smallest = float(np.percentile(side, low))
            for high in largest:
                for spacing in (geometric_sizes, linear_sizes):
                    sizes = tuple(round(float(v), 4) for v in spacing(levels, smallest, max(high, smallest)))
                    yield replace(preset, ratios=ratios, sizes=sizes)


def class_sample(boxes: torch.Tensor, labels: torch.Tensor, total: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``total`` boxes shared equally by the classes (all of a class that has fewer), the same
    on any device."""
    generator, keep, classes = torch.Generator().manual_seed(0), [], labels.cpu()
    present = classes.unique()
    for c in present:
        members = torch.nonzero(classes == c).squeeze(1)
        keep.append(members[torch.randperm(len(members), generator=generator)[:max(1, total // len(present))]])
    keep = torch.cat(keep).to(boxes.device)
    return boxes[keep], labels[keep]


def fit_anchors(boxes: list[torch.Tensor], labels: list[torch.Tensor], preset: AnchorSpec, grids,
                input_size: tuple[int, int], positive_iou: float) -> tuple[AnchorSpec, dict]:
    """(the spec to train with, the report): the best fitted spec when its fitness is at least the
    preset's, else the preset. ``labels``: each image's class indices."""
    if not any(len(b) for b in boxes):
        raise ValueError("model.detector.anchors.fit: the training and validation splits have no boxes to fit")
    sample, sample_labels = class_sample(torch.cat([b for b in boxes if len(b)]),
                                         torch.cat([lab for b, lab in zip(boxes, labels) if len(b)]), SEARCH_BOXES)
    scored = []
    for spec in fitted_specs(sample, preset, len(grids), input_size):
        quality = coverage([sample], [sample_labels], make_anchors(grids, spec, input_size), positive_iou)
        scored.append((quality["fitness"], spec))
    fitted = max(scored, key=lambda s: s[0])[1]
    fitted_quality = coverage(boxes, labels, make_anchors(grids, fitted, input_size), positive_iou)
    preset_quality = coverage(boxes, labels, make_anchors(grids, preset, input_size), positive_iou)
    use_fit = fitted_quality["fitness"] >= preset_quality["fitness"]
    report = {"chosen": "fitted" if use_fit else "preset", "boxes": int(sum(len(b) for b in boxes)),
              "positive_iou": positive_iou, "fitted": {**fitted_quality, "sizes": list(fitted.sizes),
                                                       "ratios": list(fitted.ratios)},
              "preset": {**preset_quality, "sizes": [w for w, _ in preset.level_sizes(grids)],
                         "ratios": list(preset.ratios)}}
    return (fitted if use_fit else preset), report
