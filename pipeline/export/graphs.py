"""The exported graphs: each trained network wrapped so that its outputs are what a user needs,
and the `predict` command needs no torch (normalisation is inside every graph).

- classifier: images B x 3 x H x W (0..255) -> probabilities B x K (softmax);
- fcn: images of any size (at least one window) -> class probabilities B x K x H' x W';
- detector: images -> sigmoid scores B x A x K and decoded boxes B x A x 4 (xyxy, fractions of
  the input: the anchors and box coding are baked in; NMS stays outside, in numpy).
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.tasks import TASKS


class ClassifierGraph(nn.Module):
    outputs = TASKS["classifier"].outputs

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(images), dim=1)


class FCNGraph(nn.Module):
    """The FCN without its small-input padding (a shape-dependent branch): `predict` pads inputs
    smaller than a window with the mean colour itself."""

    outputs = TASKS["fcn"].outputs

    def __init__(self, fcn: nn.Module):
        super().__init__()
        self.fcn = fcn

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.fcn.cells(images), dim=1)


class DetectorGraph(nn.Module):
    outputs = TASKS["detector"].outputs

    def __init__(self, net: nn.Module, anchors: torch.Tensor, coder, input_size: tuple[int, int]):
        super().__init__()
        self.net, self.coder = net, coder
        self.register_buffer("anchors", anchors.clone())
        width, height = input_size
        self.register_buffer("scale", torch.tensor([width, height, width, height], dtype=torch.float32))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, deltas = self.net(images)
        return torch.sigmoid(logits), self.coder.decode(deltas, self.anchors) / self.scale
