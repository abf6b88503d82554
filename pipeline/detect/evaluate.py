"""Evaluate a trained detector on val/test: COCO metrics (mAP@0.5, mAP@[.5:.95], by size and per
class), precision-recall curves at IoU 0.5, precision/recall/F1 against the confidence threshold
(with the threshold of best F1 in the metrics), a confusion matrix with background (CSV for `dvc
plots` and PNGs), label statistics, and pictures of ground truth next to predictions. Everything
is logged to the training's MLflow run."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torchmetrics.detection import MeanAveragePrecision

from pipeline.data.manifest import Manifest
from pipeline.data.split import evaluated_splits
from pipeline.detect.data import DetectionData
from pipeline.detect.metrics import detection_metrics
from pipeline.detect.report import confidence_report, save_anchor_picture, save_label_statistics
from pipeline.detect.train import load_detector
from pipeline.detect.views import Detector
from pipeline.devices import accelerator_device
from pipeline.io.atomic import atomic_dir, atomic_write_json
from pipeline.predict.tiles import sliced_detections
from pipeline.training import log_to_run
from pipeline.viz import Panel, plt, save_grid

PICTURES = 8
DRAW_SCORE = 0.3  # predictions drawn on the pictures


@torch.no_grad()
def tile_detector(net, anchors, coder, info: dict):
    """A function from tiles (H x W x 3 uint8) to each tile's detections in numpy, for sliced
    inference; tiles go to the network's device."""
    detector = Detector(net, anchors, coder, info)

    def detect(tiles: list[np.ndarray]) -> list[dict]:
        found = detector(torch.from_numpy(np.stack(tiles).transpose(0, 3, 1, 2).copy()))
        return [{k: v.cpu().numpy() for k, v in f.items()} for f in found]

    return detect


@torch.no_grad()
def predict_sliced(net, anchors, coder, info: dict, data: DetectionData, split: str):
    """(predictions, targets, images) of a split's whole images, by sliced inference."""
    tiles, post = info["tiles"], info["postprocess"]
    detect = tile_detector(net, anchors, coder, info)
    preds, targets, images = [], [], []
    for i in range(len(data.samples[split])):
        example = data.example(split, i)
        found = sliced_detections(example.image, tuple(tiles["input_size"]), float(tiles["overlap"]),
                                  int(tiles["pad_fill"]), float(tiles["merge_ios"]), int(post["max_detections"]),
                                  detect)
        preds.append({k: torch.from_numpy(v) for k, v in found.items()})
        targets.append({"boxes": torch.from_numpy(example.boxes), "labels": torch.from_numpy(example.labels)})
        images.append(torch.from_numpy(example.image.transpose(2, 0, 1).copy()))
    return preds, targets, images


@torch.no_grad()
def predict(net, anchors, coder, info: dict, data: DetectionData, split: str):
    """(predictions, targets, images) of a split, through the eval pipeline (whole images sliced
    into tiles when the model was trained on tiles)."""
    if info["tiles"]:
        return predict_sliced(net, anchors, coder, info, data, split)
    detector = Detector(net, anchors, coder, info)
    preds, targets, images = [], [], []
    for batch in data.loader(split, augment=False, shuffle=False):
        found = detector(batch["images"])
        preds += [{k: v.cpu() for k, v in f.items()} for f in found]
        targets += [{"boxes": b, "labels": lab} for b, lab in zip(batch["boxes"], batch["labels"])]
        images += list(batch["images"])
    return preds, targets, images


def pr_curves(preds, targets, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Recall points (101) and precision per class (K x 101) at IoU 0.5, from COCOeval's table."""
    metric = MeanAveragePrecision(iou_type="bbox", backend="faster_coco_eval", iou_thresholds=[0.5],
                                  extended_summary=True, class_metrics=True)
    metric.update(preds, targets)
    result = metric.compute()
    precision = result["precision"][0, :, :, 0, -1].numpy()  # recall x class, all areas, 100 detections
    curves = np.full((num_classes, precision.shape[0]), np.nan)
    present = [int(c) for c in result["classes"].flatten().tolist()]
    for column, c in enumerate(present[: precision.shape[1]]):
        curves[c] = np.where(precision[:, column] < 0, np.nan, precision[:, column])
    return np.linspace(0, 1, precision.shape[0]), curves


def save_pr(recall, curves, classes, csv_dir: Path, png: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(5, 4))
    for c, name in enumerate(classes):
        if np.all(np.isnan(curves[c])):
            continue
        with open(csv_dir / f"{name}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["recall", "precision"])
            writer.writerows((f"{r:.2f}", f"{p:.4f}") for r, p in zip(recall, np.nan_to_num(curves[c])))
        ax.plot(recall, curves[c], label=name)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def save_pictures(images, preds, targets, classes, path: Path) -> None:
    panels = []
    for image, pred, target in list(zip(images, preds, targets))[:PICTURES]:
        pixels = image.permute(1, 2, 0).numpy()
        panels.append(Panel(pixels, target["boxes"].tolist(), [classes[int(i)] for i in target["labels"]],
                            "ground truth"))
        shown = pred["scores"] >= DRAW_SCORE
        panels.append(Panel(pixels, pred["boxes"][shown].tolist(),
                            [f"{classes[int(i)]} {float(s):.2f}" for i, s in
                             zip(pred["labels"][shown], pred["scores"][shown])], f"predicted (score >= {DRAW_SCORE})"))
    save_grid(panels, path, ncols=4)


def unscored_objects(data: DetectionData, split: str, result: dict) -> int:
    """Objects of the manifest that the eval pipeline's resize shrank below the box policy (so they
    are not scored), with a warning: small objects in large images want tiles."""
    count = sum(len(s.boxes) for s in data.samples[split]) - result["objects"]
    if count:
        print(f"warning: evaluate@detector: {count} of {count + result['objects']} {split} objects are smaller "
              "than the box policy (augment.detector.boxes) once resized to the input and are not scored; "
              "for small objects in large images train on tiles (augment/detector=tiles)")
    return count


def evaluate_detector(cfg: DictConfig, manifest: str | Path, pipelines_dir: str | Path, model_dir: str | Path,
                      metrics_path: str | Path, reports_dir: str | Path, pr_dir: str | Path,
                      run_id: str | None = None) -> dict:
    net, anchors, coder, info = load_detector(model_dir)
    net.to(accelerator_device(cfg.trainer.accelerator))
    classes = info["classes"]
    tc = cfg.train.detector
    data = DetectionData(manifest, pipelines_dir, tc.batch_size, tc.num_workers, cfg.seed)
    results, flat, reports_dir, pr_dir = {}, {}, Path(reports_dir), Path(pr_dir)
    fit = info["anchor_fit"]  # None: the anchors were not fitted (anchors.fit: false)
    with atomic_dir(reports_dir) as reports, atomic_dir(pr_dir) as curves_dir:
        for split in evaluated_splits(cfg.evaluate.detector.splits, data.samples):
            if not data.samples[split]:
                continue
            preds, targets, images = predict(net, anchors, coder, info, data, split)
            results[split] = detection_metrics(preds, targets, classes)
            results[split]["objects_too_small_after_resize"] = unscored_objects(data, split, results[split])
            flat.update({f"eval_{split}_{k}": v for k, v in results[split].items()
                         if isinstance(v, float)})  # None: no objects of that size
            recall, curves = pr_curves(preds, targets, len(classes))
            (curves_dir / "pr" / split).mkdir(parents=True)
            save_pr(recall, curves, classes, curves_dir / "pr" / split, reports / f"pr_{split}.png",
                    f"{split}: precision-recall at IoU 0.5 (mAP@0.5 {results[split]['map_50']:.3f})")
            best = confidence_report(preds, targets, classes, split, reports, curves_dir)
            results[split].update(best)
            flat.update({f"eval_{split}_{k}": v for k, v in best.items()})
            if split == "val":
                save_pictures(images, preds, targets, classes, reports / "predictions_val.png")
                if fit:
                    save_anchor_picture([t["boxes"] for t in targets], tuple(info["input_size"]), fit,
                                        list(info["model"]["anchors"]["zooms"]), reports / "anchors.png")
        save_label_statistics(Manifest.read(manifest), reports / "labels.png")
    if fit:  # how well the anchors cover the boxes, next to the scores they led to
        results["anchors"] = fit
        flat.update({f"anchor_{k}_{which}": fit[which][k] for which in ("fitted", "preset")
                     for k in ("recall", "worst_class_recall", "mean_iou", "fitness")})
    atomic_write_json(metrics_path, results)
    log_to_run(cfg, model_dir, flat, sorted(reports_dir.glob("*.png")) + [Path(metrics_path)], "evaluation",
               pending_dir=reports_dir, run_id=run_id)
    return results
