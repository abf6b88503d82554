"""The classifier's bundle: the network with a softmax, fed as `predict` fits a whole image."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn

from pipeline.data.manifest import Manifest
from pipeline.models.exportable import SAMPLES, Exportable, image_preprocessing, val_pixels
from pipeline.predict.preprocess import fit_batch
from pipeline.tasks import TASKS


class ClassifierGraph(nn.Module):
    """Images B x 3 x H x W (0..255) -> class probabilities B x K."""

    outputs = TASKS["classifier"].outputs

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(images), dim=1)


def load_classifier_export(cfg: DictConfig, model_dir: Path, manifest: Manifest,
                           metrics: dict | None) -> Exportable:
    from pipeline.classify.evaluate import load_classifier

    net, info = load_classifier(model_dir)
    pre = image_preprocessing(net, info, cfg.augment.classifier)
    images = val_pixels(manifest, "val", SAMPLES)
    spec = {"task": "classifier", "labels": info["classes"], "preprocessing": pre, "postprocessing": {},
            "model": info["model"]}
    return Exportable(ClassifierGraph(net).eval(), spec, [fit_batch(images, pre)[0]], images)
