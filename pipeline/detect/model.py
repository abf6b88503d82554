"""The SSD detector (seed 003's shape): a backbone feature pyramid (timm ``features_only``), extra
stride-2 layers down to 1x1, and a class head and a box head (3x3 convolutions) per level.

Input: uint8-range images (B x 3 x H x W, 0..255), normalised inside. Output: class logits
B x A x K (sigmoid per class, no background class) and box deltas B x A x 4, anchors ordered
as pipeline.detect.anchors makes them.
"""

from __future__ import annotations

import math

import timm
import torch
from torch import nn

from pipeline.models.pretrained import PretrainedUnavailable, lite0_imagenet_state_dict

LITE0 = "tf_efficientnet_lite0"


def std_conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """Seed 003's StdConv: 3x3 convolution, batch norm, ReLU."""
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
    net = timm.create_model(name, features_only=True, out_indices=(2, 3, 4), pretrained=False)
    if pretrained == "imagenet":
        if name != LITE0:
            raise PretrainedUnavailable(f"model.detector: offline ImageNet weights exist for {LITE0} only, not {name}; "
                                        "use backbone: tf_efficientnet_lite0, or pretrained: none")
        full = timm.create_model(LITE0, pretrained=False)
        missing, _ = net.load_state_dict(lite0_imagenet_state_dict(full), strict=False)
        if missing:
            raise PretrainedUnavailable(f"lite0 weights: the feature pyramid lacks {missing[:3]}")
    cfg = net.pretrained_cfg
    return net, list(net.feature_info.channels()), tuple(cfg.get("mean", (0.5,) * 3)), tuple(cfg.get("std", (0.5,) * 3))


class SSD(nn.Module):
    def __init__(self, num_classes: int, anchors_per_cell: int, input_size: tuple[int, int],
                 backbone: str = LITE0, pretrained: str = "imagenet", width: int = 16, extra_channels: int = 128,
                 levels: list[int] | None = None, prior: float = 0.01):
        super().__init__()
        self.backbone, channels, mean, std = backbone_pyramid(backbone, pretrained, width)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255)
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
        self.class_heads = nn.ModuleList(nn.Conv2d(all_channels[lv], anchors_per_cell * num_classes, 3, padding=1)
                                         for lv in self.levels)
        self.box_heads = nn.ModuleList(nn.Conv2d(all_channels[lv], anchors_per_cell * 4, 3, padding=1)
                                       for lv in self.levels)
        for head in self.class_heads:  # RetinaNet's prior: every anchor starts at probability `prior`
            nn.init.normal_(head.weight, std=0.01)
            nn.init.constant_(head.bias, -math.log((1 - prior) / prior))
        self.eval()  # probing with one image: batch norm must not need batch statistics
        with torch.no_grad():
            self.grids = [tuple(m.shape[2:]) for m in self.feature_maps(torch.zeros(1, 3, height_px, width_px))]
        self.train()

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = (images.float() - self.mean) / self.std
        maps = list(self.backbone(x))
        for extra in self.extras:
            maps.append(extra(maps[-1]))
        return [maps[lv] for lv in self.levels]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, deltas = [], []
        for fmap, cls_head, box_head in zip(self.feature_maps(images), self.class_heads, self.box_heads):
            b = fmap.shape[0]
            logits.append(cls_head(fmap).permute(0, 2, 3, 1).reshape(b, -1, self.num_classes))
            deltas.append(box_head(fmap).permute(0, 2, 3, 1).reshape(b, -1, 4))
        return torch.cat(logits, dim=1), torch.cat(deltas, dim=1)

    def param_groups(self) -> list[list[nn.Parameter]]:
        """Backbone, then the new layers (extras and heads): for frozen warm-up and discriminative LRs."""
        new = [*self.extras.parameters(), *self.class_heads.parameters(), *self.box_heads.parameters()]
        return [list(self.backbone.parameters()), new]
