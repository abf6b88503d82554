"""The image classifier: normalisation inside the network, a backbone, and a head.

Input: uint8-range images (B x 3 x H x W, 0..255, RGB); the network scales and normalises them
with its backbone's mean/std, so exported models and ``predict`` need only resize.
Heads: ``pool_linear`` (global average pooling + linear: any input size) or ``alexnet_fc``
(flatten + fc6/fc7/fc8 as in the whale-face workflow's AlexNet: a fixed input size).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from pipeline.models.backbones import Backbone, build_backbone, check_input_size, feature_shape
from pipeline.models.finetune import load_trained
from pipeline.models.layout import ChannelsLast
from pipeline.schema import ClassifierModel


class PoolLinearHead(nn.Module):
    def __init__(self, channels: int, num_classes: int, dropout: float):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.pool(features).flatten(1)))


class AlexNetHead(nn.Module):
    def __init__(self, feature_chw: tuple[int, int, int], num_classes: int, dropout: float, hidden: int = 256):
        super().__init__()
        c, h, w = feature_chw
        self.feature_chw = feature_chw
        self.fc6 = nn.Linear(c * h * w, hidden)
        self.fc7 = nn.Linear(hidden, hidden)
        self.fc8 = nn.Linear(hidden, num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.dropout(torch.relu(self.fc6(features.flatten(1))))
        x = self.dropout(torch.relu(self.fc7(x)))
        return self.fc8(x)


class ClassifierNet(ChannelsLast, nn.Module):
    def __init__(self, backbone: Backbone, num_classes: int, input_size, dropout: float = 0.2, hidden: int = 256):
        super().__init__()
        self.register_buffer("mean", torch.tensor(backbone.mean).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(backbone.std).view(1, 3, 1, 1) * 255.0)
        self.features = backbone.features
        self.groups = list(backbone.groups)  # modules of `features` (a plain list: not registered twice)
        self.stem_layers = list(backbone.stem)  # likewise
        if backbone.head == "alexnet_fc":
            self.head = AlexNetHead(feature_shape(backbone, input_size), num_classes, dropout, hidden)
        else:
            self.head = PoolLinearHead(backbone.channels, num_classes, dropout)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return self.layout((images.float() - self.mean) / self.std)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(self.normalize(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(images))

    def stem(self) -> list[nn.Module]:
        return self.stem_layers

    def param_groups(self) -> list[list[nn.Parameter]]:
        """Backbone groups early -> late, then the head."""
        return [list(g.parameters()) for g in self.groups] + [list(self.head.parameters())]


CLASS_OUTPUTS = r"head\.(fc|fc8)\."  # the layer that depends on the classes (PoolLinearHead, AlexNetHead)


def build_classifier(model: ClassifierModel, classes: Sequence[str], input_size) -> ClassifierNet:
    """``model``: name, pretrained (imagenet | none | a checkpoint, model folder or bundle of this
    project: pipeline.models.finetune), dropout, width, hidden."""
    backbone = build_backbone(model.name, imagenet=model.pretrained == "imagenet", width=model.width)
    check_input_size(backbone, model.name, input_size)
    net = ClassifierNet(backbone, len(classes), input_size, model.dropout, model.hidden)
    if model.pretrained not in ("imagenet", "none"):
        load_trained(net, model.pretrained, CLASS_OUTPUTS, classes)
    return net
