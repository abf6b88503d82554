"""The heatmap stage: per-class probability maps of the synthetic scenes from the trained
classifier's fully convolutional form, against a batched sliding window at the same stride.

Measured: speed (FCN vs sliding window on the same scenes), agreement of the two maps,
pointing game (the peak of a class's map falls in a box of that class) and AP@0.5 of boxes
taken from the heatmaps (threshold + connected components).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image
from scipy import ndimage
from torchmetrics.detection import MeanAveragePrecision
from torchvision.ops import batched_nms

from pipeline.classify.evaluate import load_classifier
from pipeline.data.manifest import Manifest
from pipeline.heatmap.fcn import FullyConvolutional, Geometry, window_geometry
from pipeline.heatmap.sliding import sliding_window_logits
from pipeline.io.atomic import atomic_dir, atomic_write_json
from pipeline.io.images import read_image
from pipeline.viz import plt

METHODS = ("fcn", "sliding")


@dataclass
class ScaleMaps:
    """Class probability maps (K x rows x cols) of one scene at one scale, per method."""

    scale: float
    probs: dict[str, torch.Tensor] = field(default_factory=dict)


def resize(pixels: np.ndarray, scale: float) -> torch.Tensor:
    h, w = pixels.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resized = np.asarray(Image.fromarray(pixels).resize(size, Image.BILINEAR))
    return torch.from_numpy(np.ascontiguousarray(resized.transpose(2, 0, 1)))


def cell_boxes(geometry: Geometry, rows: int, cols: int, scale: float, context: float) -> np.ndarray:
    """rows x cols x 4: the scene-pixel box of the object each cell looks for (xyxy).

    A training patch is the object's box grown by ``context``, so the object inside a window of
    side s is about s / (1 + context).
    """
    cx = geometry.centers(cols, 0).numpy() / scale
    cy = geometry.centers(rows, 1).numpy() / scale
    half_w = geometry.window[0] / (1 + context) / scale / 2
    half_h = geometry.window[1] / (1 + context) / scale / 2
    xx, yy = np.meshgrid(cx, cy)
    return np.stack([xx - half_w, yy - half_h, xx + half_w, yy + half_h], axis=-1)


def heatmap_detections(probs: torch.Tensor, boxes: np.ndarray, threshold: float, num_objects: int):
    """Per object class, each connected group of cells above ``threshold`` gives one box: the
    union of its cells' boxes, scored by its highest probability."""
    found = []
    for c in range(num_objects):
        p = probs[c].numpy()
        components, n = ndimage.label(p > threshold)
        for k in range(1, n + 1):
            mask = components == k
            b = boxes[mask]
            found.append(([b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()], float(p[mask].max()), c))
    return (torch.tensor([f[0] for f in found], dtype=torch.float32).reshape(-1, 4),
            torch.tensor([f[1] for f in found], dtype=torch.float32),
            torch.tensor([f[2] for f in found], dtype=torch.int64))


def peak(maps: list[ScaleMaps], method: str, c: int, geometry: Geometry, smooth: int) -> tuple[float, float]:
    """Scene-pixel centre of the strongest cell of class ``c`` over all scales.

    Probabilities saturate at 1.0 on many cells; a ``smooth`` x ``smooth`` mean first makes the
    peak the middle of the strongest blob rather than the first saturated cell.
    """
    best, point = -1.0, (0.0, 0.0)
    for m in maps:
        p = m.probs[method][c][None, None]
        if p.numel() == 0:
            continue
        if smooth > 1:
            p = torch.nn.functional.avg_pool2d(p, smooth, 1, smooth // 2, count_include_pad=False)
        p = p[0, 0]
        row, col = divmod(int(p.argmax()), p.shape[1])
        if float(p.max()) > best:
            best = float(p.max())
            point = ((geometry.offset(0) + col * geometry.stride) / m.scale,
                     (geometry.offset(1) + row * geometry.stride) / m.scale)
    return point


def inside(point, boxes) -> bool:
    x, y = point
    return any(b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in boxes)


def ap50(preds: list[dict], targets: list[dict]) -> float:
    if not targets:
        return float("nan")
    metric = MeanAveragePrecision(iou_type="bbox", iou_thresholds=[0.5], backend="faster_coco_eval")
    metric.update(preds, targets)
    return float(metric.compute()["map"])


def agreement(pairs: list[tuple[torch.Tensor, torch.Tensor]], num_objects: int, threshold: float) -> dict:
    """Correlation of the object-class probabilities, IoU of the thresholded maps, largest difference."""
    if not pairs:
        return {}
    a = torch.cat([x[:num_objects].flatten() for x, _ in pairs])
    b = torch.cat([y[:num_objects].flatten() for _, y in pairs])
    on_a, on_b = a > threshold, b > threshold
    union = int((on_a | on_b).sum())
    return {"correlation": float(torch.corrcoef(torch.stack([a, b]))[0, 1]) if a.numel() > 1 else 1.0,
            "iou": float((on_a & on_b).sum()) / union if union else 1.0,
            "max_abs_diff": float((a - b).abs().max())}


def run_heatmaps(cfg: DictConfig, manifest_path: str | Path, model_dir: str | Path, metrics_path: str | Path,
                 reports_dir: str | Path) -> dict:
    hc = cfg.heatmap
    net, info = load_classifier(model_dir)
    fcn = FullyConvolutional(net, info["input_size"]).eval()
    stride, window = fcn.geometry.stride, fcn.geometry.window
    geometries = {"fcn": fcn.geometry, "sliding": window_geometry(stride, window)}
    manifest = Manifest.read(manifest_path)
    scenes = manifest.split(hc.split)
    if not scenes:
        raise ValueError(f"{manifest_path}: no images in split {hc.split!r} to draw heatmaps on "
                         "(the synthetic data has 'scene'; set heatmap.split)")
    num_objects, context = len(manifest.classes), float(cfg.train.classifier.patch_context)
    compared = {s.id for s in scenes[: int(hc.compare_scenes)]}
    seconds, windows, pairs = {m: 0.0 for m in METHODS}, 0, []
    with torch.no_grad():  # warm-up outside the clock
        warm = torch.zeros(1, 3, window[1] * 2, window[0] * 2, dtype=torch.uint8)
        fcn(warm), sliding_window_logits(net, warm[0], window, stride)
    drawn, preds, targets, pointing = [], {m: [] for m in METHODS}, {m: [] for m in METHODS}, {m: [] for m in METHODS}
    for scene in scenes:
        pixels = read_image(manifest.path_of(scene)).pixels
        methods = METHODS if scene.id in compared else ("fcn",)
        maps = []
        for scale in hc.scales:
            image = resize(pixels, float(scale))
            probs = {}
            with torch.no_grad():
                for method in methods:  # timed on the same scenes and scales
                    start = time.perf_counter()
                    logits = fcn(image[None])[0] if method == "fcn" else sliding_window_logits(net, image, window, stride)
                    probs[method] = torch.softmax(logits, dim=0)
                    seconds[method] += time.perf_counter() - start
            if "sliding" in probs:
                windows += probs["sliding"][0].numel()
                if fcn.geometry.valid:  # same grid: cell (i, j) is window (i, j)
                    pairs.append((probs["fcn"], probs["sliding"]))
            maps.append(ScaleMaps(float(scale), probs))
        drawn.append((scene, pixels, maps))
        gt_boxes = np.asarray(scene.boxes, np.float32).reshape(-1, 4)
        gt_labels = np.asarray(scene.box_labels, np.int64)
        for method in methods:
            targets[method].append({"boxes": torch.from_numpy(gt_boxes), "labels": torch.from_numpy(gt_labels)})
            for c in sorted(set(gt_labels.tolist())):
                point = peak(maps, method, c, geometries[method], int(hc.peak_smoothing))
                pointing[method].append(inside(point, gt_boxes[gt_labels == c]))
            found = [heatmap_detections(m.probs[method], cell_boxes(geometries[method], *m.probs[method].shape[1:],
                                                                    m.scale, context), float(hc.threshold), num_objects)
                     for m in maps]
            boxes, scores, labels = (torch.cat([f[k] for f in found]) for k in range(3))
            keep = batched_nms(boxes, scores, labels, float(hc.nms_iou))
            preds[method].append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
    results = {
        "scenes": len(scenes), "compared_scenes": len(compared), "scales": [float(s) for s in hc.scales],
        "stride": stride, "window": list(window), "sliding_windows": windows, "backbone": info["model"]["name"],
        "valid_convolutions": fcn.geometry.valid,
        "seconds_on_compared_scenes": seconds, "speed_ratio": seconds["sliding"] / max(seconds["fcn"], 1e-9),
        "pointing_game": {m: float(np.mean(pointing[m])) for m in METHODS},
        "pointing_pairs": {m: len(pointing[m]) for m in METHODS},
        "ap50": {m: ap50(preds[m], targets[m]) for m in METHODS},
        "agreement": agreement(pairs, num_objects, float(hc.threshold)),
    }
    atomic_write_json(metrics_path, results)
    with atomic_dir(reports_dir) as tmp:
        save_overlays([d for d in drawn if d[0].id in compared][: int(hc.overlays)], manifest.classes,
                      tmp / "overlays.png", num_objects, geometries)
    return results


def heat_extent(geometry: Geometry, shape, scale: float) -> tuple[float, float, float, float]:
    """Scene-pixel extent (left, right, bottom, top) of a map whose cells are centred as ``geometry`` says."""
    rows, cols = shape
    half = geometry.stride / 2
    x0, y0 = geometry.offset(0) - half, geometry.offset(1) - half
    return (x0 / scale, (x0 + cols * geometry.stride) / scale, (y0 + rows * geometry.stride) / scale, y0 / scale)


def save_overlays(scenes, classes: list[str], path: Path, num_objects: int, geometries: dict) -> None:
    """Rows: scenes. Columns: the image with its boxes, then each method's heatmap (jet colormap
    over the image as in seed 000; max over the object classes, at the largest scale)."""
    fig, axes = plt.subplots(max(1, len(scenes)), 3, figsize=(11, 3.0 * max(1, len(scenes))), squeeze=False)
    for row, (scene, pixels, maps) in zip(axes, scenes):
        h, w = pixels.shape[:2]
        row[0].imshow(pixels)
        for box, label in zip(scene.boxes, scene.box_labels):
            x1, y1, x2, y2 = box
            row[0].add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="white", lw=1))
            row[0].text(x1, y1, classes[label], color="white", fontsize=6, va="bottom")
        row[0].set_title(f"{scene.id}: ground truth", fontsize=8)
        largest = max(maps, key=lambda m: m.scale)
        for ax, method in zip(row[1:], METHODS):
            ax.imshow(pixels)
            heat = largest.probs.get(method)
            if heat is not None and heat[0].numel():
                ax.imshow(heat[:num_objects].max(dim=0).values.numpy(), cmap="jet", alpha=0.5, vmin=0, vmax=1,
                          interpolation="bilinear", extent=heat_extent(geometries[method], heat.shape[1:], largest.scale))
            ax.set_xlim(0, w)
            ax.set_ylim(h, 0)
            ax.set_title(f"{method} (scale {largest.scale:g}): max object probability", fontsize=8)
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
