"""What a task hands to the export (pipeline.export.build): the loaded model's graph, its bundle
spec and real example inputs, and the helpers every task's loader uses to fill them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from omegaconf import DictConfig

from pipeline.data.manifest import Manifest
from pipeline.io.images import read_image

SAMPLES = 8


@dataclass
class Exportable:
    """A loaded model ready for export: its graph, bundle spec and real example inputs."""

    graph: torch.nn.Module
    spec: dict
    inputs: list[np.ndarray]  # float32 batches B x 3 x H x W; the FCN's at two sizes
    sample_images: list[np.ndarray]
    dynamic_size: bool = False
    # the task's own check after the graphs' outputs agree: (self, onnxruntime session) ->
    # (report name, report, failures), e.g. the detector's detections after post-processing
    parity: Callable[[Exportable, object], tuple[str, dict, list[str]]] | None = None


def val_pixels(manifest: Manifest, split: str, count: int) -> list[np.ndarray]:
    samples = manifest.split(split)[:count]
    if not samples:
        raise ValueError(f"export: the manifest has no {split!r} images to check the export on")
    return [read_image(manifest.path_of(s)).pixels for s in samples]


def image_preprocessing(net, info: dict, aug: DictConfig) -> dict:
    """How `predict` fits an image to a whole-image network: size, resize mode, padding, and the
    normalisation the graph applies itself."""
    return {"input_size": list(info["input_size"]), "resize": str(aug.resize), "pad_fill": int(aug.pad_fill),
            "mean": net.mean.flatten().div(255).tolist(), "std": net.std.flatten().div(255).tolist(),
            "normalised_in_graph": True}
