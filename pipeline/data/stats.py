"""Dataset statistics (JSON) and their pictures (sample grid, histograms)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from pipeline.data.manifest import Manifest
from pipeline.data.validate import Outcome
from pipeline.io.images import read_image
from pipeline.viz import Panel, save_grid


def summarize(values) -> dict | None:
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        return None
    q = np.percentile(v, [0, 5, 50, 95, 100])
    return {"min": round(q[0], 3), "p05": round(q[1], 3), "median": round(q[2], 3),
            "p95": round(q[3], 3), "max": round(q[4], 3), "mean": round(float(v.mean()), 3)}


def box_arrays(manifest: Manifest) -> tuple[np.ndarray, np.ndarray]:
    """(N x 4 boxes, N image areas) over all samples."""
    boxes = [b for s in manifest.samples for b in s.boxes]
    areas = [s.width * s.height for s in manifest.samples for _ in s.boxes]
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), np.asarray(areas, dtype=np.float64)


def compute_stats(manifest: Manifest, outcome: Outcome, found: int) -> dict:
    names = manifest.classes
    splits = {}
    for split in sorted({s.split for s in manifest.samples}):
        samples = manifest.split(split)
        if manifest.task == "classification":
            per_class = Counter(names[s.label] for s in samples)
        elif manifest.task == "multilabel":
            per_class = Counter(names[c] for s in samples for c in s.labels)
        else:
            per_class = Counter(names[c] for s in samples for c in s.box_labels)
        splits[split] = {"images": len(samples), "boxes": sum(len(s.boxes) for s in samples),
                         "per_class": {n: per_class.get(n, 0) for n in names}}
    boxes, image_areas = box_arrays(manifest)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    warnings = list(outcome.warnings)
    for name in names:
        in_splits = [sp for sp, info in splits.items()
                     if info["per_class"][name] > 0 and sp in ("train", "val", "test")]
        if len(in_splits) < 2:
            warnings.append(f"class {name!r} appears only in {in_splits or 'no split'}: too few images to validate it")
    return {
        "task": manifest.task,
        "classes": names,
        "found": found,
        "accepted": len(outcome.accepted),
        "rejected": len(outcome.rejected),
        "rejected_by_code": dict(sorted(Counter(r.code for r in outcome.rejected).items())),
        "converted_modes": dict(sorted(outcome.converted_modes.items())),
        "exif_rotated": outcome.exif_rotated,
        "clipped_boxes": outcome.clipped_boxes,
        "ignored_annotations": outcome.ignored_annotations,
        "duplicates_kept_together": outcome.duplicates_kept,
        "splits": splits,
        "image_width": summarize(s.width for s in manifest.samples),
        "image_height": summarize(s.height for s in manifest.samples),
        "boxes": {
            "count": int(len(boxes)),
            "per_image": summarize(len(s.boxes) for s in manifest.samples),
            "width": summarize(w),
            "height": summarize(h),
            "area_fraction": summarize(w * h / image_areas) if len(boxes) else None,
            "aspect_ratio": summarize(w / h) if len(boxes) else None,
        },
        "warnings": warnings,
    }


def save_sample_grid(manifest: Manifest, path: Path, count: int = 16) -> None:
    """A grid of samples (train first) with their boxes and labels drawn."""
    names = manifest.classes
    order = sorted(manifest.samples, key=lambda s: (s.split != "train", s.split or "", s.id))
    panels = []
    for s in order[:count]:
        title = f"{s.id} [{s.split}]" + (f"\n{names[s.label]}" if s.label is not None else "")
        panels.append(Panel(read_image(manifest.path_of(s)).pixels, s.boxes, [names[c] for c in s.box_labels], title))
    save_grid(panels, path, ncols=4, title=f"{manifest.source.get('format')} samples")


def save_histograms(manifest: Manifest, stats: dict, path: Path) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    ax = axes[0, 0]
    names, width = manifest.classes, 0.8 / max(1, len(stats["splits"]))
    x = np.arange(len(names))
    for i, (split, info) in enumerate(stats["splits"].items()):
        ax.bar(x + i * width, [info["per_class"][n] for n in names], width, label=split)
    ax.set_xticks(x + width * (len(stats["splits"]) - 1) / 2, names, rotation=30, fontsize=8)
    ax.set_title("boxes per class" if manifest.task == "detection" else "images per class")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    ax.scatter([s.width for s in manifest.samples], [s.height for s in manifest.samples], s=6, alpha=0.5)
    ax.set_xlabel("width (px)")
    ax.set_ylabel("height (px)")
    ax.set_title("image sizes")
    boxes, _ = box_arrays(manifest)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    for ax, values, title, log in ((axes[1, 0], np.sqrt(w * h), "box size sqrt(w*h) (px)", False),
                                   (axes[1, 1], w / np.maximum(h, 1e-9), "box aspect ratio w/h", True)):
        if len(values):
            bins = np.geomspace(values.min(), values.max() + 1e-9, 30) if log else 30
            ax.hist(values, bins=bins)
            if log:
                ax.set_xscale("log")
        else:
            ax.text(0.5, 0.5, "no boxes", ha="center", transform=ax.transAxes)
        ax.set_title(title)
    fig.suptitle(f"{stats['accepted']} accepted, {stats['rejected']} rejected of {stats['found']} found")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
