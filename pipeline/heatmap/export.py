"""The heatmap network's bundle: the FCN's cells with a softmax, on images of any size."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn

from pipeline.data.manifest import Manifest
from pipeline.io.images import read_image
from pipeline.models.exportable import Exportable
from pipeline.predict.preprocess import batch, scaled
from pipeline.tasks import TASKS


class FCNGraph(nn.Module):
    """Images of any size (at least one window) -> class probabilities B x K x H' x W'. The FCN
    without its small-input padding (a shape-dependent branch): `predict` pads inputs smaller than
    a window with the mean colour itself."""

    outputs = TASKS["fcn"].outputs

    def __init__(self, fcn: nn.Module):
        super().__init__()
        self.fcn = fcn

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.fcn.cells(images), dim=1)


def load_fcn_export(cfg: DictConfig, model_dir: Path, manifest: Manifest, metrics: dict | None) -> Exportable:
    from pipeline.heatmap.stage import heatmap_split
    from pipeline.heatmap.train import load_fcn

    fcn, info = load_fcn(model_dir)
    g = fcn.geometry
    mean = fcn.mean.flatten().div(255).tolist()
    pre = {"window": list(g.window), "stride": g.stride, "scales": list(cfg.evaluate.fcn.scales),
           "mean": mean, "std": fcn.std.flatten().div(255).tolist(), "normalised_in_graph": True,
           "min_size": list(g.window)}
    background = "background" if "background" in info["classes"] else None
    scenes = manifest.split(heatmap_split(manifest, cfg.evaluate.fcn.split))
    images = [read_image(manifest.path_of(s)).pixels for s in scenes[:4]]
    fill = [round(m * 255) for m in mean]
    inputs = [batch([scaled(images[0], 1.0, g.window, fill)]), batch([scaled(images[0], 0.61, g.window, fill)])]
    spec = {"task": "fcn", "labels": info["classes"], "preprocessing": pre,
            "postprocessing": {"background": background}, "model": info["model"]}
    return Exportable(FCNGraph(fcn).eval(), spec, inputs, images, dynamic_size=True)
