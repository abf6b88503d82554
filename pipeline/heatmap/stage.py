"""The heatmap evaluation (`evaluate@fcn`): per-class probability maps of the images from the trained
FCN (`train@fcn`), against the same network run as a batched sliding window at the same stride.

Measured: speed (FCN vs sliding window on the same scenes), agreement of the two maps, pointing
game (the peak of a class's map falls in a box of that class) and AP@0.5 of boxes taken from the
heatmaps (threshold + connected components), also for the FCN before dense fine-tuning.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image
from scipy import ndimage
from torchmetrics.detection import MeanAveragePrecision
from torchvision.ops import batched_nms, nms

from pipeline.classify.evaluate import load_classifier
from pipeline.data.manifest import Manifest
from pipeline.devices import accelerator_device, module_device
from pipeline.heatmap.fcn import FullyConvolutional, Geometry, window_geometry
from pipeline.heatmap.sliding import sliding_window_logits
from pipeline.heatmap.train import CLASSIFIER_DIR, load_fcn
from pipeline.io.atomic import atomic_dir, atomic_write_json
from pipeline.io.images import read_image
from pipeline.models.folding import fold_batch_norms
from pipeline.viz import plt


@dataclass
class Method:
    """One way of making a scene's logit map (K x rows x cols) from a 3 x H x W uint8 image."""

    logits: Callable[[torch.Tensor], torch.Tensor]
    geometry: Geometry
    all_scenes: bool  # False: only on the compared scenes (the slow baseline)


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
    """rows x cols x 4: the scene-pixel box (xyxy) of the object each cell looks for."""
    return geometry.object_boxes(rows, cols, context).numpy() / scale


def overlap_stride(window: tuple[int, int], overlap: float) -> int:
    """The stride of windows that overlap their neighbours by ``overlap`` of the window's side."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"evaluate.fcn.sliding_overlaps: {overlap} is not in [0, 1)")
    return max(1, round(min(window) * (1.0 - overlap)))


def heatmap_methods(fcn: FullyConvolutional, before: FullyConvolutional | None,
                    overlaps: list[float]) -> dict[str, Method]:
    """The trained FCN on whole images, the same network on every window at the FCN's stride, on
    windows that overlap by each of ``overlaps`` (the classic sliding-window baselines: 0 and 25 %),
    and (when dense fine-tuning ran) the converted patch classifier before it. Each runs on the
    networks' device and gives its map back on the CPU (so a clock read after it times the work)."""
    g, device = fcn.geometry, module_device(fcn)

    def method(logits: Callable[[torch.Tensor], torch.Tensor], geometry: Geometry, all_scenes: bool) -> Method:
        return Method(lambda image: logits(image.to(device)).float().cpu(), geometry, all_scenes)

    def sliding(stride: int, all_scenes: bool) -> Method:
        # on one window the FCN's pooled output is the classifier's logits (exactly, for both heads)
        return method(lambda image: sliding_window_logits(fcn.pooled, image, g.window, stride),
                      window_geometry(stride, g.window), all_scenes)

    methods = {"fcn": method(lambda image: fcn(image[None])[0], g, True), "sliding": sliding(g.stride, False)}
    for overlap in overlaps:  # far fewer windows than at the FCN's stride: every scene
        methods[f"sliding_overlap_{round(100 * overlap)}"] = sliding(overlap_stride(g.window, overlap), True)
    if before is not None:
        methods["before_dense"] = method(lambda image: before(image[None])[0], before.geometry, True)
    return methods


def heatmap_detections(probs: torch.Tensor, boxes: np.ndarray, threshold: float, num_objects: int):
    """Per object class, each connected group of cells above ``threshold`` gives one box: the mean
    of its cells' object boxes weighted by their probabilities, scored by its highest probability.

    (The union of the cells' boxes would be larger than the object by the blob's extent: AP@0.5
    0.06 against 0.83 for the weighted mean, measured on the default scenes.)
    """
    found = []
    for c in range(num_objects):
        p = probs[c].numpy()
        components, n = ndimage.label(p > threshold)
        for k in range(1, n + 1):
            mask = components == k
            weights = p[mask]
            found.append(((boxes[mask] * weights[:, None]).sum(0) / weights.sum(), float(weights.max()), c))
    return (torch.tensor(np.array([f[0] for f in found]), dtype=torch.float32).reshape(-1, 4),
            torch.tensor([f[1] for f in found], dtype=torch.float32),
            torch.tensor([f[2] for f in found], dtype=torch.int64))


def peak(maps: list[ScaleMaps], method: str, c: int, geometry: Geometry, smooth: int) -> tuple[float, float]:
    """Scene-pixel centre of the strongest cell of class ``c`` over all scales.

    Probabilities saturate at 1.0 on many cells; a ``smooth`` x ``smooth`` mean first makes the
    peak the middle of the strongest blob rather than the first saturated cell.
    """
    best, point = -1.0, (0.0, 0.0)
    for m in maps:
        if method not in m.probs:  # a scale the method did not run at
            continue
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


AUTO_SPLITS = ("scene", "test", "val")  # evaluate.fcn.split: auto takes the first the data has


def heatmap_split(manifest: Manifest, split: str) -> str:
    """``split``, or for ``auto`` the large synthetic scenes if the data has them, else test, else val."""
    if split != "auto":
        return split
    return next((s for s in AUTO_SPLITS if manifest.split(s)), AUTO_SPLITS[-1])


def evaluate_fcn(cfg: DictConfig, manifest_path: str | Path, pipelines_dir: str | Path, model_dir: str | Path,
                 metrics_path: str | Path, reports_dir: str | Path, tables_dir: str | Path,
                 run_id: str | None = None) -> dict:
    """The `evaluate@fcn` step: :func:`run_heatmaps`, its figures added to the FCN's MLflow run and
    the time of each method on the compared images as a table for `dvc plots`."""
    from pipeline.io.atomic import atomic_write_text
    from pipeline.training import log_to_run

    r = run_heatmaps(cfg, manifest_path, model_dir, metrics_path, reports_dir)
    flat = {"heatmap_speed_ratio": r["speed_ratio"]}
    for method in r["pointing_game"]:
        flat[f"heatmap_pointing_{method}"] = r["pointing_game"][method]
        flat[f"heatmap_ap50_{method}"] = r["ap50"][method]
    flat.update({f"heatmap_agreement_{k}": v for k, v in r["agreement"].items()})
    log_to_run(cfg, model_dir, flat, [Path(reports_dir) / "overlays.png", Path(metrics_path)], "heatmap",
               pending_dir=reports_dir, run_id=run_id)
    Path(tables_dir).mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{name},{s:.6f}\n" for name, s in r["seconds_on_compared_scenes"].items())
    atomic_write_text(Path(tables_dir) / "seconds.csv", "method,seconds\n" + rows)
    return r


def run_heatmaps(cfg: DictConfig, manifest_path: str | Path, model_dir: str | Path, metrics_path: str | Path,
                 reports_dir: str | Path) -> dict:
    hc = cfg.evaluate.fcn
    device = accelerator_device(cfg.trainer.accelerator)
    fcn, info = load_fcn(model_dir)
    # every method runs the same network with its batch norms folded, in the faster memory layout
    fcn = fold_batch_norms(fcn).to(device).fast_layout()
    before = None
    if info.get("dense_epochs", 0) > 0:
        net, _ = load_classifier(Path(model_dir) / CLASSIFIER_DIR)
        before = fold_batch_norms(FullyConvolutional(net, info["input_size"])).to(device).fast_layout()
    methods = heatmap_methods(fcn, before, [float(v) for v in hc.sliding_overlaps])
    manifest = Manifest.read(manifest_path)
    split = heatmap_split(manifest, str(hc.split))
    scenes = manifest.split(split)
    if not scenes:
        raise ValueError(f"{manifest_path}: no images in split {split!r} to draw heatmaps on; set "
                         f"evaluate.fcn.split to one of {', '.join(manifest.split_names())} or auto")
    num_objects, context = len(manifest.classes), float(info["patch_context"])
    compared = {s.id for s in scenes[: int(hc.compare_scenes)]}
    compared_scales = {float(v) for v in hc.compare_scales}
    if not compared_scales <= {float(v) for v in hc.scales}:
        raise ValueError(f"evaluate.fcn.compare_scales {sorted(compared_scales)} must be among evaluate.fcn.scales "
                         f"{list(hc.scales)}")
    stride, window = fcn.geometry.stride, fcn.geometry.window
    seconds, windows, pairs = dict.fromkeys(methods, 0.0), 0, []
    drawn = []
    preds, targets, pointing = ({name: [] for name in methods} for _ in range(3))
    for scene in scenes:
        pixels = read_image(manifest.path_of(scene)).pixels
        names = [n for n, m in methods.items() if m.all_scenes or scene.id in compared]
        maps = []
        for scale in hc.scales:
            image = resize(pixels, float(scale))
            timed = scene.id in compared and float(scale) in compared_scales
            probs = {}
            with torch.no_grad():
                for name in names:
                    if not (methods[name].all_scenes or timed):
                        continue  # the sliding window runs only where it is compared
                    if timed:  # a first call on an input shape picks its kernels (oneDNN, cuDNN): not timed
                        methods[name].logits(image)
                    start = time.perf_counter()
                    probs[name] = torch.softmax(methods[name].logits(image), dim=0)
                    if timed:  # every method timed on the same scenes and scales
                        seconds[name] += time.perf_counter() - start
            if "sliding" in probs:
                windows += probs["sliding"][0].numel()
                if fcn.geometry.valid:  # same grid: cell (i, j) is window (i, j)
                    pairs.append((probs["fcn"], probs["sliding"]))
            maps.append(ScaleMaps(float(scale), probs))
        drawn.append((scene, pixels, maps, {}))
        gt_boxes = np.asarray(scene.boxes, np.float32).reshape(-1, 4)
        gt_labels = np.asarray(scene.box_labels, np.int64)
        for name in names:
            geometry = methods[name].geometry
            targets[name].append({"boxes": torch.from_numpy(gt_boxes), "labels": torch.from_numpy(gt_labels)})
            for c in sorted(set(gt_labels.tolist())):
                point = peak(maps, name, c, geometry, int(hc.peak_smoothing))
                pointing[name].append(inside(point, gt_boxes[gt_labels == c]))
            found = [heatmap_detections(m.probs[name], cell_boxes(geometry, *m.probs[name].shape[1:], m.scale, context),
                                        float(hc.threshold), num_objects) for m in maps if name in m.probs]
            boxes, scores, labels = (torch.cat([f[k] for f in found]) for k in range(3))
            keep = batched_nms(boxes, scores, labels, float(hc.nms_iou))
            preds[name].append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
            drawn[-1][3][name] = preds[name][-1]
    compared_seconds = dict(seconds)  # every method, timed on the same scenes and scales
    results = {
        "split": split, "scenes": len(scenes), "compared_scenes": len(compared),
        "scales": [float(s) for s in hc.scales], "compared_scales": sorted(compared_scales),
        "stride": stride, "window": list(window), "sliding_windows": windows,
        "strides": {name: m.geometry.stride for name, m in methods.items()}, "backbone": info["model"]["name"],
        "valid_convolutions": fcn.geometry.valid, "dense_epochs": int(info.get("dense_epochs", 0)),
        "seconds_on_compared_scenes": compared_seconds,
        "speed_ratio": compared_seconds["sliding"] / max(compared_seconds["fcn"], 1e-9),
        "speed_ratios": {name: s / max(compared_seconds["fcn"], 1e-9) for name, s in compared_seconds.items()},
        "pointing_game": {name: float(np.mean(pointing[name])) for name in methods},
        "pointing_pairs": {name: len(pointing[name]) for name in methods},
        "ap50": {name: ap50(preds[name], targets[name]) for name in methods},
        "agreement": agreement(pairs, num_objects, float(hc.threshold)),
    }
    atomic_write_json(metrics_path, results)
    with atomic_dir(reports_dir) as tmp:
        save_overlays(drawn[: int(hc.overlays)], manifest.classes,
                      tmp / "overlays.png", num_objects, {name: m.geometry for name, m in methods.items()},
                      float(hc.draw_score))
    return results


def scene_heat(maps: list[ScaleMaps], method: str, geometry: Geometry, num_objects: int, size) -> np.ndarray | None:
    """H x W: the highest object-class probability over all scales, each cell painted over the
    stride-sized block it is centred on, in scene pixels."""
    height, width = size
    heat = np.zeros((height, width), np.float32)
    for m in maps:
        probs = m.probs.get(method)
        if probs is None or probs[0].numel() == 0:
            continue
        cells = probs[:num_objects].max(dim=0).values
        rows, cols = cells.shape
        y = ((np.arange(height) + 0.5) * m.scale - geometry.offset(1) + geometry.stride / 2) // geometry.stride
        x = ((np.arange(width) + 0.5) * m.scale - geometry.offset(0) + geometry.stride / 2) // geometry.stride
        inside_y, inside_x = (y >= 0) & (y < rows), (x >= 0) & (x < cols)
        painted = cells.numpy()[np.clip(y, 0, rows - 1).astype(int)][:, np.clip(x, 0, cols - 1).astype(int)]
        heat = np.maximum(heat, np.where(inside_y[:, None] & inside_x[None, :], painted, 0.0))
    return heat


def draw_boxes(ax, boxes, labels, classes: list[str], color: str, scores=None) -> None:
    for i, (box, label) in enumerate(zip(boxes, labels)):
        x1, y1, x2, y2 = (float(v) for v in box)
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color=color, lw=1))
        text = classes[int(label)] + ("" if scores is None else f" {float(scores[i]):.2f}")
        ax.text(x1, y1, text, color=color, fontsize=6, va="bottom")


def save_overlays(scenes, classes: list[str], path: Path, num_objects: int, geometries: dict,
                  draw_score: float) -> None:
    """Rows: scenes. Columns: the image with its boxes, then each method's heatmap (jet colormap
    over the image as in the whale-face workflow: the highest object probability over all scales) with the
    boxes taken from it that score at least ``draw_score``."""
    columns = 1 + len(geometries)
    fig, axes = plt.subplots(max(1, len(scenes)), columns, figsize=(3.7 * columns, 3.0 * max(1, len(scenes))),
                             squeeze=False)
    for row, (scene, pixels, maps, found) in zip(axes, scenes):
        row[0].imshow(pixels)
        draw_boxes(row[0], scene.boxes, scene.box_labels, classes, "white")
        row[0].set_title(f"{scene.id}: ground truth", fontsize=8)
        for ax, method in zip(row[1:], geometries):
            ax.imshow(pixels)
            ran = sum(method in m.probs for m in maps)
            if not ran:  # the sliding window runs only on the compared scenes and scales
                ax.set_title(f"{method}: not run on this scene (evaluate.fcn.compare_*)", fontsize=8)
                ax.axis("off")
                continue
            ax.imshow(scene_heat(maps, method, geometries[method], num_objects, pixels.shape[:2]), cmap="jet",
                      alpha=0.5, vmin=0, vmax=1)
            if method in found:  # the confident ones, one per place (class-agnostic NMS), for legibility
                f = found[method]
                keep = nms(f["boxes"], f["scores"], 0.3)
                keep = keep[f["scores"][keep] >= draw_score]
                draw_boxes(ax, f["boxes"][keep], f["labels"][keep], classes, "white", f["scores"][keep])
            ax.set_title(f"{method}: heatmap over {ran} scale{'s' * (ran > 1)}, its boxes", fontsize=8)
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
