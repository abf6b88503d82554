"""Evaluate a multi-label classifier: thresholds per class chosen on validation (best F1), then on
each split mean average precision over classes, macro and micro F1, per-class precision, recall
and AP; precision-recall curves and a grid of validation images with the classes found."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from sklearn.metrics import average_precision_score, f1_score, precision_recall_curve, precision_score, recall_score

from pipeline.classify.evaluate import load_classifier
from pipeline.classify.evaluate import predict_split as predict_images
from pipeline.data.split import evaluated_splits
from pipeline.devices import accelerator_device
from pipeline.io.atomic import atomic_dir, atomic_write_json
from pipeline.multilabel.data import MultiLabelData
from pipeline.training import log_to_run
from pipeline.viz import Panel, plt, save_grid

THRESHOLD_SPLIT = "val"  # thresholds are chosen here and applied to every split
PICTURES = 12


def predict_split(net, data: MultiLabelData, split: str):
    """(probabilities N x K, 0/1 targets N x K, images) of ``split``."""
    probs, targets, images = predict_images(net, data, split, torch.sigmoid)
    return probs, targets.astype(int), images


def best_f1_thresholds(probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per class, the probability threshold with the best F1 on these images (0.5 for a class with no
    positive image: nothing to fit it on)."""
    thresholds = np.full(probs.shape[1], 0.5)
    for c in range(probs.shape[1]):
        if targets[:, c].sum() == 0:
            continue
        precision, recall, cuts = precision_recall_curve(targets[:, c], probs[:, c])
        f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
        thresholds[c] = float(cuts[int(np.argmax(f1))])
    return thresholds


def split_metrics(probs: np.ndarray, targets: np.ndarray, thresholds: np.ndarray, classes: list[str]) -> dict:
    predicted = (probs >= thresholds).astype(int)
    present = targets.sum(0) > 0  # AP is undefined for a class absent from the split
    ap = [float(average_precision_score(targets[:, c], probs[:, c])) if present[c] else None
          for c in range(len(classes))]
    kw = {"zero_division": 0}
    return {
        "map": float(np.mean([a for a in ap if a is not None])) if any(present) else 0.0,
        "macro_f1": float(f1_score(targets, predicted, average="macro", **kw)),
        "micro_f1": float(f1_score(targets, predicted, average="micro", **kw)),
        "exact_match": float((predicted == targets).all(1).mean()),
        "count": int(len(targets)),
        "per_class": {name: {"ap": ap[c], "threshold": float(thresholds[c]), "support": int(targets[:, c].sum()),
                             "precision": float(precision_score(targets[:, c], predicted[:, c], **kw)),
                             "recall": float(recall_score(targets[:, c], predicted[:, c], **kw))}
                      for c, name in enumerate(classes)},
    }


def save_curves(probs, targets, classes, png: Path, tables: Path, title: str) -> None:
    """One precision-recall curve per class: a picture and a CSV each for `dvc plots`."""
    tables.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 4))
    for c, name in enumerate(classes):
        if targets[:, c].sum() == 0:
            continue
        precision, recall, _ = precision_recall_curve(targets[:, c], probs[:, c])
        ax.plot(recall, precision, label=name)
        with open(tables / f"{name}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["recall", "precision"])
            writer.writerows(zip(recall.round(5), precision.round(5)))
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def save_examples(images, probs, targets, thresholds, classes, path: Path) -> None:
    panels = []
    for i in range(min(PICTURES, len(probs))):
        found = [f"{classes[c]} {probs[i, c]:.2f}" for c in np.argsort(-probs[i]) if probs[i, c] >= thresholds[c]]
        truth = [classes[c] for c in np.flatnonzero(targets[i])]
        mark = "ok" if set(truth) == {f.rsplit(" ", 1)[0] for f in found} else "wrong"
        panels.append(Panel(images[i].permute(1, 2, 0).numpy(),
                            title=f"{mark}: {', '.join(found) or '-'}\ntrue: {', '.join(truth) or '-'}"))
    save_grid(panels, path, ncols=4, title="validation images: classes above their threshold")


def evaluate_multilabel(cfg: DictConfig, manifest: str | Path, pipelines_dir: str | Path, model_dir: str | Path,
                        metrics_path: str | Path, reports_dir: str | Path, tables_dir: str | Path,
                        run_id: str | None = None) -> dict:
    net, info = load_classifier(model_dir)
    net.to(accelerator_device(cfg.trainer.accelerator))
    tc = cfg.train.multilabel
    data = MultiLabelData(manifest, pipelines_dir, tc.batch_size, tc.num_workers, cfg.seed)
    if data.classes != info["classes"]:
        raise ValueError(f"{model_dir}: trained on classes {info['classes']} but the data has {data.classes}; "
                         "re-run train@multilabel")
    predicted = {split: predict_split(net, data, split)
                 for split in evaluated_splits([THRESHOLD_SPLIT, *cfg.evaluate.multilabel.splits], data.items)}
    thresholds = best_f1_thresholds(*predicted[THRESHOLD_SPLIT][:2])
    results = {"thresholds": dict(zip(data.classes, thresholds.round(6).tolist()))}
    with atomic_dir(reports_dir) as reports, atomic_dir(tables_dir) as tables:
        for split in cfg.evaluate.multilabel.splits:
            probs, targets, images = predicted[split]
            if len(targets) == 0:
                continue
            results[split] = split_metrics(probs, targets, thresholds, data.classes)
            save_curves(probs, targets, data.classes, reports / f"pr_{split}.png", tables / split,
                        f"{split}: mAP {results[split]['map']:.3f}")
            if split == THRESHOLD_SPLIT:
                save_examples(images, probs, targets, thresholds, data.classes, reports / "examples_val.png")
    atomic_write_json(metrics_path, results)
    flat = {f"eval_{split}_{k}": v for split, m in results.items() if split != "thresholds"
            for k, v in m.items() if isinstance(v, float)}
    log_to_run(cfg, model_dir, flat, sorted(Path(reports_dir).glob("*.png")) + [Path(metrics_path)], "evaluation",
               pending_dir=reports_dir, run_id=run_id)
    return results


def thresholds_of(metrics: dict, classes: list[str]) -> list[float]:
    """The per-class thresholds an evaluation chose, in class order (for the bundle)."""
    chosen = metrics["thresholds"]
    return [float(chosen[name]) for name in classes]


