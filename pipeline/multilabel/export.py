"""The multi-label bundle: the network with a sigmoid per class, and the thresholds its evaluation
chose, so that `predict` prints the classes above their threshold."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn

from pipeline.data.manifest import Manifest
from pipeline.models.exportable import SAMPLES, Exportable, image_preprocessing, val_pixels
from pipeline.predict.preprocess import fit_batch
from pipeline.tasks import TASKS


class MultiLabelGraph(nn.Module):
    """Images B x 3 x H x W (0..255) -> independent class probabilities B x K."""

    outputs = TASKS["multilabel"].outputs

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(images))


def load_multilabel_export(cfg: DictConfig, model_dir: Path, manifest: Manifest, metrics: dict | None) -> Exportable:
    from pipeline.classify.evaluate import load_classifier

    if not metrics or "thresholds" not in metrics:
        raise ValueError(f"export multilabel: the bundle needs the per-class thresholds of its evaluation; "
                         f"run evaluate@multilabel for {model_dir} and pass its metrics "
                         "(--metrics metrics/multilabel.json)")
    net, info = load_classifier(model_dir)
    pre = image_preprocessing(net, info, cfg.augment.multilabel)
    thresholds = [float(metrics["thresholds"][name]) for name in info["classes"]]
    images = val_pixels(manifest, "val", SAMPLES)
    spec = {"task": "multilabel", "labels": info["classes"], "preprocessing": pre,
            "postprocessing": {"thresholds": thresholds}, "model": info["model"]}
    return Exportable(MultiLabelGraph(net).eval(), spec, [fit_batch(images, pre)[0]], images)
