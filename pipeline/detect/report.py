"""The pictures of a detection report beyond mAP, as detection users know them from Ultralytics'
`val`: precision, recall and F1 against the confidence threshold (and the threshold of best F1),
a confusion matrix with a background row and column, and label statistics.

Hand-written because torchmetrics' MeanAveragePrecision ranks detections by score but reports
precision at recall levels only, not per confidence threshold, and has no confusion matrix.
Matching follows COCO at IoU 0.5: per image and class, detections in falling score order each
take the unmatched ground-truth box of highest IoU.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou

from pipeline.data.manifest import SPLITS, Manifest
from pipeline.viz import plt, save_confusion

IOU = 0.5
THRESHOLDS = np.linspace(0, 1, 101)


def scored_matches(preds: list[dict], targets: list[dict], num_classes: int):
    """Per class: (scores, true-positive flags) of every detection, and the number of objects."""
    scores = [[] for _ in range(num_classes)]
    hits = [[] for _ in range(num_classes)]
    objects = np.zeros(num_classes, dtype=int)
    for pred, target in zip(preds, targets):
        for c in range(num_classes):
            truth = target["boxes"][target["labels"] == c]
            mine = pred["labels"] == c
            found, order = pred["boxes"][mine], torch.argsort(pred["scores"][mine], descending=True)
            objects[c] += len(truth)
            taken = torch.zeros(len(truth), dtype=torch.bool, device=truth.device)
            ious = box_iou(found, truth) if len(truth) and len(found) else truth.new_zeros(len(found), len(truth))
            for i in order.tolist():
                overlap = ious[i].masked_fill(taken, -1.0)
                best = int(overlap.argmax()) if len(truth) else -1
                hit = best >= 0 and float(overlap[best]) >= IOU
                if hit:
                    taken[best] = True
                scores[c].append(float(pred["scores"][mine][i]))
                hits[c].append(hit)
    return [np.asarray(s) for s in scores], [np.asarray(h, dtype=bool) for h in hits], objects


def confidence_curves(preds: list[dict], targets: list[dict], num_classes: int) -> dict[str, np.ndarray]:
    """Precision, recall and F1 (classes x thresholds) of the detections kept at each confidence
    threshold; NaN for classes without objects, precision NaN where nothing is kept."""
    scores, hits, objects = scored_matches(preds, targets, num_classes)
    shape = (num_classes, len(THRESHOLDS))
    precision, recall = np.full(shape, np.nan), np.full(shape, np.nan)
    for c in range(num_classes):
        if objects[c] == 0:
            continue
        kept = scores[c][None, :] >= THRESHOLDS[:, None]  # thresholds x detections
        tp = (kept & hits[c][None, :]).sum(1)
        total = kept.sum(1)
        precision[c] = np.where(total > 0, tp / np.maximum(total, 1), np.nan)
        recall[c] = tp / objects[c]
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    f1[objects == 0] = np.nan
    return {"precision": precision, "recall": recall, "f1": f1}


def best_f1(curves: dict[str, np.ndarray]) -> dict[str, float]:
    """The highest confidence threshold where the F1 averaged over classes is at its best (of equal
    F1, the one that keeps fewest detections), and the precision and recall there."""
    mean_f1 = np.nanmean(curves["f1"], axis=0)
    at = int(np.flatnonzero(mean_f1 == np.nanmax(mean_f1))[-1])
    return {"best_f1": float(mean_f1[at]), "best_f1_confidence": float(THRESHOLDS[at]),
            "precision_at_best_f1": float(np.nanmean(np.nan_to_num(curves["precision"][:, at]))),
            "recall_at_best_f1": float(np.nanmean(curves["recall"][:, at]))}


def confusion_pairs(preds: list[dict], targets: list[dict], confidence: float, background: int) -> list[tuple]:
    """(actual, predicted) per object and per kept detection, whatever their classes: a detection
    and an object of IoU >= 0.5 pair up (highest IoU first, one to one); an object left alone is
    (its class, background), a detection left alone (background, its class)."""
    pairs = []
    for pred, target in zip(preds, targets):
        kept = pred["scores"] >= confidence
        boxes, labels = pred["boxes"][kept], pred["labels"][kept]
        truth, truth_labels = target["boxes"], target["labels"]
        ious = box_iou(truth, boxes) if len(truth) and len(boxes) else truth.new_zeros(len(truth), len(boxes))
        candidates = []
        if ious.numel():
            t_index, d_index = torch.nonzero(ious >= IOU, as_tuple=True)
            candidates = sorted(zip(ious[t_index, d_index].tolist(), t_index.tolist(), d_index.tolist()), reverse=True)
        used_t, used_d = set(), set()
        for _, t, d in candidates:
            if t not in used_t and d not in used_d:
                used_t.add(t)
                used_d.add(d)
                pairs.append((int(truth_labels[t]), int(labels[d])))
        pairs += [(int(truth_labels[t]), background) for t in range(len(truth)) if t not in used_t]
        pairs += [(background, int(labels[d])) for d in range(len(boxes)) if d not in used_d]
    return pairs


def save_confidence_curves(curves: dict[str, np.ndarray], best: dict, classes: list[str], csv_path: Path,
                           png: Path, title: str) -> None:
    """CSV (confidence, precision, recall, f1 averaged over classes) for `dvc plots`, and a PNG with
    one panel per measure: a line per class and their mean."""
    mean = {k: np.nanmean(np.nan_to_num(v) if k == "precision" else v, axis=0) for k, v in curves.items()}
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["confidence", "precision", "recall", "f1"])
        writer.writerows((f"{t:.2f}", *(f"{mean[k][i]:.4f}" for k in ("precision", "recall", "f1")))
                         for i, t in enumerate(THRESHOLDS))
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, name in zip(axes, ("f1", "precision", "recall")):
        for c, label in enumerate(classes):
            if not np.all(np.isnan(curves[name][c])):
                ax.plot(THRESHOLDS, curves[name][c], linewidth=1, alpha=0.6, label=label)
        ax.plot(THRESHOLDS, mean[name], color="black", linewidth=2.5, label="all classes")
        ax.axvline(best["best_f1_confidence"], color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel("confidence threshold")
        ax.set_ylabel(name)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
    axes[0].set_title(f"best F1 {best['best_f1']:.3f} at {best['best_f1_confidence']:.2f}", fontsize=9)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def save_label_statistics(manifest: Manifest, png: Path) -> None:
    """Objects per class and split; box centres and sizes (fractions of the image) of every split."""
    classes, splits = manifest.classes, [name for name in SPLITS if manifest.split(name)]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    width = 0.8 / max(1, len(splits))
    for i, split in enumerate(splits):
        counts = np.bincount([c for sample in manifest.split(split) for c in sample.box_labels],
                             minlength=len(classes))
        axes[0].bar(np.arange(len(classes)) + i * width, counts, width, label=split)
    axes[0].set_xticks(np.arange(len(classes)) + width * (len(splits) - 1) / 2, classes, rotation=30, fontsize=8)
    axes[0].set_title("objects per class")
    axes[0].legend(fontsize=7)
    fractions = np.asarray([np.asarray(box) / [s.width, s.height, s.width, s.height] for split in splits
                            for s in manifest.split(split) for box in s.boxes]).reshape(-1, 4)
    centres = (fractions[:, :2] + fractions[:, 2:]) / 2
    extent = fractions[:, 2:] - fractions[:, :2]
    for ax, values, title, labels in ((axes[1], centres, "box centres", ("x", "y")),
                                      (axes[2], extent, "box sizes", ("width", "height"))):
        ax.hist2d(values[:, 0], values[:, 1], bins=30, range=[[0, 1], [0, 1]], cmap="Blues")
        ax.set_xlabel(f"{labels[0]} (fraction of the image)")
        ax.set_ylabel(f"{labels[1]} (fraction of the image)")
        ax.set_title(f"{title} ({len(values)} objects)")
    axes[1].invert_yaxis()  # image coordinates: y down
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def confidence_report(preds: list[dict], targets: list[dict], classes: list[str], split: str, pictures: Path,
                      tables: Path) -> dict[str, float]:
    """A split's curves against confidence and its confusion matrix at the best-F1 threshold:
    PNGs in ``pictures``, CSVs in ``tables``/confidence and ``tables``/confusion. Returns the best F1,
    its threshold, and precision and recall there."""
    curves = confidence_curves(preds, targets, len(classes))
    best = best_f1(curves)
    for folder in ("confidence", "confusion"):
        (tables / folder).mkdir(exist_ok=True)
    save_confidence_curves(curves, best, classes, tables / "confidence" / f"{split}.csv",
                           pictures / f"f1_confidence_{split}.png",
                           f"{split}: precision, recall and F1 against the confidence threshold (IoU 0.5)")
    pairs = confusion_pairs(preds, targets, best["best_f1_confidence"], len(classes))
    save_confusion([a for a, _ in pairs], [p for _, p in pairs], [*classes, "background"],
                   pictures / f"confusion_{split}.png", tables / "confusion" / f"{split}.csv",
                   f"{split}: detections at confidence >= {best['best_f1_confidence']:.2f} (best F1), IoU 0.5")
    return best


def save_anchor_picture(boxes: list[torch.Tensor], input_size: tuple[int, int], fit: dict, zooms: list[float],
                        png: Path) -> None:
    """The boxes' widths and heights (fractions of the input) with the anchor shapes of the fitted
    and the preset layout (each level's size x zoom x ratio) over them, and each one's recall."""
    width, height = input_size
    every = torch.cat([b.cpu() for b in boxes if len(b)]) if any(len(b) for b in boxes) else torch.zeros(0, 4)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter((every[:, 2] - every[:, 0]) / width, (every[:, 3] - every[:, 1]) / height, s=6, alpha=0.35,
               color="grey", label=f"boxes ({len(every)})")
    for name, marker, colour in (("preset", "x", "tab:blue"), ("fitted", "o", "tab:orange")):
        layout = fit[name]
        shapes = np.array([(s * z * np.sqrt(r), s * z / np.sqrt(r)) for s in layout["sizes"] for z in zooms
                           for r in layout["ratios"]])
        used = " (used)" if fit["chosen"] == name else ""
        style = {"facecolors": "none", "edgecolors": colour} if marker == "o" else {"color": colour}
        ax.scatter(shapes[:, 0], shapes[:, 1], marker=marker, s=40, linewidths=1.5, **style,
                   label=f"{name} anchors{used}: recall {layout['recall']:.3f}, mean IoU {layout['mean_iou']:.3f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("width (fraction of the input)")
    ax.set_ylabel("height (fraction of the input)")
    ax.set_title(f"box sizes against anchor sizes (IoU >= {fit['positive_iou']} counts)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
