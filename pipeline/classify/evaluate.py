"""Evaluate a trained classifier on val/test: metrics, confusion matrix, misclassified images, and
a grid of validation images with their predicted class and probability (wrong ones first).

Everything is also logged to the training's MLflow run (run.json next to the checkpoint).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from sklearn.metrics import precision_recall_fscore_support

from pipeline.classify.data import ClassificationData, data_from_config
from pipeline.data.split import evaluated_splits
from pipeline.devices import accelerator_device, module_device, to_device
from pipeline.io.atomic import atomic_dir, atomic_write_json
from pipeline.models.classifier import ClassifierNet, build_classifier
from pipeline.models.pretrained import project_checkpoint_state
from pipeline.schema import ClassifierModel
from pipeline.training import MODEL_FILE, log_to_run
from pipeline.viz import Panel, save_confusion, save_grid

MAX_MISTAKES = 16


def load_classifier(model_dir: str | Path, checkpoint: str = "best.ckpt") -> tuple[ClassifierNet, dict]:
    """The trained network (eval mode) and its description (model config, classes, input size)."""
    model_dir = Path(model_dir)
    info = json.loads((model_dir / MODEL_FILE).read_text())
    net = build_from_info(info)
    net.load_state_dict(project_checkpoint_state(model_dir / checkpoint))
    return net.eval(), info


def build_from_info(info: dict) -> ClassifierNet:
    """The untrained network a model.json describes (its weights come from the checkpoint)."""
    model = ClassifierModel.of({**info["model"], "pretrained": "none"})
    return build_classifier(model, info["classes"], info["input_size"])


@torch.no_grad()
def predict_split(net: ClassifierNet, data: ClassificationData, split: str,
                  activation=lambda logits: torch.softmax(logits, dim=1)):
    """(probabilities N x K, labels, images) of ``split``: the network runs on its own device, the
    results come back to the CPU."""
    device = module_device(net)
    probs, labels, images = [], [], []
    for batch in data.loader(data.dataset(split, augment=False), shuffle=False):
        probs.append(activation(net(to_device(batch["images"], device)).float()).cpu())
        labels.append(batch["labels"])
        images.append(batch["images"])
    if not probs:
        return np.zeros((0, len(data.classes))), np.zeros((0, *data.label_shape()), int), None
    return torch.cat(probs).numpy(), torch.cat(labels).numpy(), torch.cat(images)


def split_metrics(probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    predicted = probs.argmax(1)
    ids = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=ids, zero_division=0)
    return {
        "accuracy": float((predicted == labels).mean()) if len(labels) else 0.0,
        "macro_f1": float(f1.mean()),
        "count": int(len(labels)),
        "per_class": {c: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                      for c, p, r, f, s in zip(classes, precision, recall, f1, support)},
    }


def save_mistakes(images, probs, labels, classes, path: Path) -> int:
    wrong = np.flatnonzero(probs.argmax(1) != labels)[:MAX_MISTAKES]
    panels = []
    for i in wrong:
        p = probs[i]
        title = f"true {classes[labels[i]]} ({p[labels[i]]:.0%})\npred {classes[p.argmax()]} ({p.max():.0%})"
        panels.append(Panel(images[i].permute(1, 2, 0).numpy(), title=title))
    if not panels:
        panels = [Panel(np.full((32, 32, 3), 255, np.uint8), title="no misclassified images")]
    save_grid(panels, path, ncols=4, title="misclassified validation images")
    return len(wrong)


def save_predictions(images, probs, labels, classes, path: Path, count: int = 16) -> None:
    """A grid of validation images with their predicted class and probability, the wrong ones
    first, then correct ones spread over the split."""
    predicted = probs.argmax(1)
    wrong, right = np.flatnonzero(predicted != labels), np.flatnonzero(predicted == labels)
    shown = list(wrong[:count // 2])
    if len(right):
        shown += list(right[np.linspace(0, len(right) - 1, min(len(right), count - len(shown))).astype(int)])
    panels = [Panel(images[i].permute(1, 2, 0).numpy(), title=(
        f"{classes[predicted[i]]} {probs[i].max():.0%}" if predicted[i] == labels[i] else
        f"WRONG: {classes[predicted[i]]} {probs[i].max():.0%}\ntrue {classes[labels[i]]} {probs[i][labels[i]]:.0%}"))
        for i in shown]
    save_grid(panels, path, ncols=4, title=f"validation: {len(wrong)} wrong of {len(labels)}")


def evaluate_classifier(cfg: DictConfig, manifest: str | Path, pipelines_dir: str | Path, model_dir: str | Path,
                        metrics_path: str | Path, reports_dir: str | Path, confusion_dir: str | Path,
                        run_id: str | None = None) -> dict:
    net, info = load_classifier(model_dir)
    net.to(accelerator_device(cfg.trainer.accelerator))
    tc = cfg.train.classifier
    data = data_from_config(manifest, pipelines_dir, tc, cfg.seed)
    if data.classes != info["classes"]:
        raise ValueError(f"{model_dir}: trained on classes {info['classes']} but the data has {data.classes}; "
                         "re-run train@classifier")
    classes, results = data.classes, {}
    reports_dir = Path(reports_dir)
    with atomic_dir(reports_dir) as tmp, atomic_dir(confusion_dir) as tables:
        for split in evaluated_splits(cfg.evaluate.classifier.splits, data.items):
            probs, labels, images = predict_split(net, data, split)
            if len(labels) == 0:
                continue
            results[split] = split_metrics(probs, labels, classes)
            save_confusion(labels, probs.argmax(1), classes, tmp / f"confusion_{split}.png", tables / f"{split}.csv")
            if split == "val":
                results[split]["misclassified"] = save_mistakes(images, probs, labels, classes,
                                                                tmp / "misclassified_val.png")
                save_predictions(images, probs, labels, classes, tmp / "predictions_val.png")
    atomic_write_json(metrics_path, results)
    log_to_training_run(cfg, model_dir, results, [reports_dir / p.name for p in sorted(reports_dir.glob("*.png"))]
                        + [Path(metrics_path)], reports_dir, run_id)
    return results


def log_to_training_run(cfg: DictConfig, model_dir: str | Path, results: dict, artifacts: list[Path],
                        pending_dir: Path, run_id: str | None) -> None:
    metrics = {}
    for split, m in results.items():
        metrics[f"eval_{split}_accuracy"] = m["accuracy"]
        metrics[f"eval_{split}_macro_f1"] = m["macro_f1"]
        for name, c in m["per_class"].items():
            metrics[f"eval_{split}_precision_{name}"] = c["precision"]
            metrics[f"eval_{split}_recall_{name}"] = c["recall"]
    log_to_run(cfg, model_dir, metrics, artifacts, "evaluation", pending_dir, run_id)
