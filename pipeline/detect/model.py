"""The SSD detector: a backbone feature pyramid (timm ``features_only``), optionally an FPN neck
(torchvision's FeaturePyramidNetwork: the fine maps get the coarse maps' semantics), extra
stride-2 layers down to 1x1, and class and box heads: fast.ai's SSD lesson's one 3x3 convolution per level, or
RetinaNet's towers of ``head_depth`` convolutions shared by all levels.

Input: uint8-range images (B x 3 x H x W, 0..255), normalised inside. Output: class logits
B x A x K (sigmoid per class, no background class) and box deltas B x A x 4, anchors ordered
as pipeline.detect.anchors makes them.
"""

from __future__ import annotations

import math

import timm
import torch
from torch import nn
from torchvision.ops import FeaturePyramidNetwork

from pipeline.detect.settings import DetectorModel
from pipeline.models.backbones import stem_modules
from pipeline.models.layout import ChannelsLast
from pipeline.models.pretrained import LITE_PACKAGES, PretrainedUnavailable, lite_imagenet_state_dict
from pipeline.precision import DenseAutocast


def std_conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """fast.ai's SSD lesson's StdConv: 3x3 convolution, batch norm, ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ScratchPyramid(nn.Module):
    """A small from-scratch backbone: five stride-2 stages; feature maps at strides 8, 16, 32."""

    def __init__(self, width: int = 16):
        super().__init__()
        chans = [width, width * 2, width * 4, width * 8, width * 8]
        stages, cin = [], 3
        for c in chans:
            stages.append(nn.Sequential(std_conv(cin, c, 2), std_conv(c, c)))
            cin = c
        self.stages = nn.ModuleList(stages)
        self.channels = chans[2:]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i >= 2:
                out.append(x)
        return out


def backbone_pyramid(name: str, pretrained: str, width: int) -> tuple[nn.Module, list[int], tuple, tuple]:
    """(module returning a list of feature maps, their channels, mean, std)."""
    if name == "scratch":
        if pretrained not in ("none", None):
            raise ValueError("model.detector: the scratch backbone has no pretrained weights (pretrained: none)")
        net = ScratchPyramid(width)
        return net, net.channels, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    if pretrained not in ("imagenet", "none"):  # a trained model's weights load after the whole SSD is built
        raise ValueError(f"model.detector.pretrained: the backbone starts from imagenet or none, not {pretrained!r}")
    net = timm.create_model(name, features_only=True, out_indices=(2, 3, 4), pretrained=False)
    if pretrained == "imagenet":
        if name not in LITE_PACKAGES:
            raise PretrainedUnavailable(f"model.detector: offline ImageNet weights exist for "
                                        f"{', '.join(LITE_PACKAGES)} only, not {name}; use one of those "
                                        "backbones, or pretrained: none")
        full = timm.create_model(name, pretrained=False)
        missing, _ = net.load_state_dict(lite_imagenet_state_dict(name, full), strict=False)
        if missing:
            raise PretrainedUnavailable(f"{name} weights: the feature pyramid lacks {missing[:3]}")
    cfg = net.pretrained_cfg
    return net, list(net.feature_info.channels()), tuple(cfg.get("mean", (0.5,) * 3)), tuple(cfg.get("std", (0.5,) * 3))


def head_tower(channels: int, depth: int) -> nn.Sequential:
    """RetinaNet's head body: ``depth`` 3x3 convolutions with group norm and ReLU (none: the fast.ai
    SSD lesson's heads)."""
    return nn.Sequential(*(layer for _ in range(depth) for layer in (
        nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.GroupNorm(8, channels), nn.ReLU(inplace=True))))


class Head(nn.Module):
    """A tower and a 3x3 output convolution: ``outputs`` values per anchor, ``per_cell`` anchors."""

    def __init__(self, channels: int, depth: int, per_cell: int, outputs: int, bias: float = 0.0):
        super().__init__()
        self.tower, self.outputs = head_tower(channels, depth), outputs
        self.out = nn.Conv2d(channels, per_cell * outputs, 3, padding=1)
        nn.init.normal_(self.out.weight, std=0.01)
        nn.init.constant_(self.out.bias, bias)

    def forward(self, fmap: torch.Tensor) -> torch.Tensor:
        """B x (H * W * per_cell) x outputs, in the anchors' order (row, col, anchor)."""
        return self.out(self.tower(fmap)).permute(0, 2, 3, 1).reshape(fmap.shape[0], -1, self.outputs)


class SSD(DenseAutocast, ChannelsLast, nn.Module):
    def __init__(self, num_classes: int, anchors_per_cell: int, input_size: tuple[int, int], model: DetectorModel):
        """``model``: `model.detector` (its backbone, pretrained weights, widths, neck, heads and
        the anchors' levels; null levels: all)."""
        super().__init__()
        neck, head_depth, extra_channels = model.neck, model.head_depth, model.extra_channels
        levels = model.anchors.levels
        self.backbone, channels, mean, std = backbone_pyramid(model.backbone, model.pretrained, model.width)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255)
        if neck not in ("none", "fpn"):
            raise ValueError(f"model.detector.neck: {neck!r} is not one of none, fpn")
        self.neck = FeaturePyramidNetwork(channels, extra_channels) if neck == "fpn" else None
        if self.neck is not None:
            channels = [extra_channels] * len(channels)
        # extra stride-2 layers after the last backbone map, until the map is 1x1
        width_px, height_px = input_size
        self.backbone.eval()
        with torch.no_grad():
            maps = self.backbone(torch.zeros(1, 3, height_px, width_px))
        h, w = maps[-1].shape[2:]
        extras, cin = [], channels[-1]
        while h > 1 or w > 1:
            extras.append(std_conv(cin, extra_channels, 2))
            cin, h, w = extra_channels, (h + 1) // 2, (w + 1) // 2
        self.extras = nn.ModuleList(extras)
        all_channels = channels + [extra_channels] * len(extras)
        self.levels = list(range(len(all_channels))) if levels is None else [
            lv % len(all_channels) for lv in levels]
        self.num_classes, self.per_cell = num_classes, anchors_per_cell
        used = {all_channels[lv] for lv in self.levels}
        if head_depth and len(used) > 1:
            raise ValueError(f"model.detector.head_depth: shared heads need one channel count on every level, not "
                             f"{sorted(used)}; use neck: fpn, or head_depth: 0 (one head per level)")
        # RetinaNet's prior: every anchor starts at probability `prior`
        bias = -math.log((1 - model.prior) / model.prior)
        count = 1 if head_depth else len(self.levels)  # shared by all levels, or one per level (fast.ai's SSD lesson)
        self.class_heads = nn.ModuleList(Head(all_channels[lv], head_depth, anchors_per_cell, num_classes, bias)
                                         for lv in self.levels[:count])
        self.box_heads = nn.ModuleList(Head(all_channels[lv], head_depth, anchors_per_cell, 4)
                                       for lv in self.levels[:count])
        self.grids = self.grids_at((width_px, height_px))
        self.train()

    def grids_at(self, size: tuple[int, int]) -> list[tuple[int, int]]:
        """The used levels' (rows, cols) for input images of ``size`` (width, height): probed with one
        image in eval mode (batch norm must not take its statistics), every module's mode restored."""
        modes = {module: module.training for module in self.modules()}
        self.eval()
        try:
            with torch.no_grad():
                probe = torch.zeros(1, 3, size[1], size[0], device=self.mean.device)
                return [tuple(m.shape[2:]) for m in self.feature_maps(probe)]
        finally:
            for module, training in modes.items():
                module.training = training

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.layout((images.float() - self.mean) / self.std)
        maps = list(self.backbone(x))
        with self.dense(x.device.type):  # the neck and the extra layers: dense convolutions (DenseAutocast)
            if self.neck is not None:
                maps = list(self.neck({str(i): m for i, m in enumerate(maps)}).values())
            for extra in self.extras:
                maps.append(extra(maps[-1]))
        return [maps[lv] for lv in self.levels]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, deltas = [], []
        fmaps = self.feature_maps(images)
        with self.dense(images.device.type):  # the heads: dense convolutions (DenseAutocast)
            for i, fmap in enumerate(fmaps):
                head = i % len(self.class_heads)
                logits.append(self.class_heads[head](fmap))
                deltas.append(self.box_heads[head](fmap))
        logits, deltas = torch.cat(logits, dim=1), torch.cat(deltas, dim=1)
        if self.dense_dtype is not None:  # the loss and the decoding in float32, as with Lightning's autocast
            return logits.float(), deltas.float()
        return logits, deltas

    def stem(self) -> list[nn.Module]:
        return stem_modules(self.backbone)

    def param_groups(self) -> list[list[nn.Parameter]]:
        """Backbone, then the new layers (neck, extras, heads): for frozen warm-up and discriminative LRs."""
        new = [p for name, p in self.named_parameters() if not name.startswith("backbone.")]
        return [list(self.backbone.parameters()), new]
