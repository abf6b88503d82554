"""Turn a trained classifier into a fully convolutional network (FCN) with the same maths.

- global pooling + linear head: the linear layer becomes a 1x1 convolution on the feature map;
  averaging its output cells gives back the classifier's logits exactly (both maps are linear).
- AlexNet-style head (the whale-face workflow): fc6 becomes a convolution whose kernel is the last feature map
  (C x h x w), fc7 and fc8 become 1x1 convolutions. With valid convolutions throughout
  (``small_alexnet``), output cell (i, j) is the classifier applied to the input window at
  (j * stride, i * stride) of the training size.

Any input size works; sizes that are not a multiple of the stride lose the last partial
window (floor pooling), inputs smaller than one window give an empty map.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from pipeline.models.classifier import AlexNetHead, ClassifierNet, PoolLinearHead
from pipeline.models.layout import ChannelsLast


def linear_to_conv(linear: nn.Linear, in_channels: int, kernel: tuple[int, int] = (1, 1)) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, linear.out_features, kernel)
    with torch.no_grad():
        conv.weight.copy_(linear.weight.view(linear.out_features, in_channels, *kernel))
        conv.bias.copy_(linear.bias)
    return conv


@dataclass(frozen=True)
class Geometry:
    """Where output cells sit on the input.

    Valid networks: cell (i, j) is the window of ``window`` pixels at (j * stride, i * stride),
    centred at window / 2 + j * stride. Padded networks (pooled heads): cell j is centred on its
    own stride-sized block, at stride / 2 + j * stride, and sees context beyond it.
    """

    stride: int
    window: tuple[int, int]  # the classifier's input size (width, height)
    valid: bool  # every cell sees exactly its window (no padding anywhere)

    def offset(self, axis: int) -> float:
        return self.window[axis] / 2 if self.valid else self.stride / 2

    def centers(self, cells: int, axis: int) -> torch.Tensor:
        return torch.arange(cells) * self.stride + self.offset(axis)

    def object_boxes(self, rows: int, cols: int, context: float) -> torch.Tensor:
        """rows x cols x 4: the input-pixel box (xyxy) of the object each cell looks for.

        A training patch is the object's box grown by ``context``, so the object inside a window
        of side s is about s / (1 + context), centred on the cell.
        """
        half_w, half_h = (v / (1 + context) / 2 for v in self.window)
        yy, xx = torch.meshgrid(self.centers(rows, 1).float(), self.centers(cols, 0).float(), indexing="ij")
        return torch.stack([xx - half_w, yy - half_h, xx + half_w, yy + half_h], dim=-1)


def window_geometry(stride: int, window) -> Geometry:
    """The sliding window's grid: windows at multiples of ``stride``, exactly as a valid FCN."""
    return Geometry(stride, tuple(int(v) for v in window), True)


class FullyConvolutional(ChannelsLast, nn.Module):
    def __init__(self, net: ClassifierNet, input_size):
        super().__init__()
        net = copy.deepcopy(net).eval()
        self.register_buffer("mean", net.mean.clone())
        self.register_buffer("std", net.std.clone())
        self.features = net.features
        head = net.head
        if isinstance(head, AlexNetHead):
            c, h, w = head.feature_chw
            self.head = nn.Sequential(
                linear_to_conv(head.fc6, c, (h, w)), nn.ReLU(),
                linear_to_conv(head.fc7, head.fc7.in_features), nn.ReLU(),
                linear_to_conv(head.fc8, head.fc8.in_features))
            valid = not any(getattr(m, "padding", (0, 0)) not in ((0, 0), 0) for m in self.features.modules())
            self.window_for_padding = tuple(int(v) for v in input_size)
        elif isinstance(head, PoolLinearHead):
            self.head = linear_to_conv(head.fc, head.fc.in_features)
            valid = False
        else:
            raise ValueError(f"cannot make {type(head).__name__} fully convolutional")
        self.geometry = Geometry(self.measure_stride(input_size), tuple(int(v) for v in input_size), valid)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits per output cell: B x K x H' x W' (images: B x 3 x H x W, 0..255).

        With a fixed-kernel (AlexNet) head, an input smaller than one window is padded
        (bottom/right) with the mean colour up to it; a pooled head takes any size as it is.
        """
        window = getattr(self, "window_for_padding", None)
        if window is None:
            return self.cells(images)
        width, height = window
        x = (images.float() - self.mean) / self.std
        x = torch.nn.functional.pad(x, (0, max(0, width - x.shape[3]), 0, max(0, height - x.shape[2])))
        return self.head(self.features(self.layout(x)))

    def cells(self, images: torch.Tensor) -> torch.Tensor:
        """Logits per output cell for images of at least one window (no shape-dependent padding:
        the exported graph is this)."""
        return self.head(self.features(self.layout((images.float() - self.mean) / self.std)))

    def pooled(self, images: torch.Tensor) -> torch.Tensor:
        """Mean of the cells' logits: the classifier's logits for a pooled head."""
        return self.forward(images).mean(dim=(2, 3))

    @torch.no_grad()
    def measure_stride(self, input_size) -> int:
        """Pixels between neighbouring output cells, measured by widening the input."""
        width, height = (int(v) for v in input_size)
        for extra in (32, 64, 128):
            a = self.forward(torch.zeros(1, 3, height, width, device=self.mean.device)).shape[-1]
            b = self.forward(torch.zeros(1, 3, height, width + extra, device=self.mean.device)).shape[-1]
            if b > a:
                return round(extra / (b - a))
        raise ValueError("the network's output does not grow with its input: not fully convolutional")
