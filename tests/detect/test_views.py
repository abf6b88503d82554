"""Test-time augmentation with the mirror image (pipeline/detect/views.py): each anchor's twin, the
averaged views, and when `flip: auto` turns it on."""

from __future__ import annotations

from dataclasses import replace

import albumentations as A
import pytest
import torch

from pipeline.detect.anchors import AnchorSpec, make_anchors, spec_from_config
from pipeline.detect.coding import BoxCoder
from pipeline.detect.model import SSD
from pipeline.detect.views import Detector, mirrored, mirrors, resolved_flip, scores_and_boxes, twin_order
from tests.helpers import detector_model


@pytest.mark.parametrize(("grids", "size"), [([(5, 7), (3, 3), (2, 1), (1, 1)], (100, 60)),
                                             ([(4, 4), (2, 2)], (64, 64))])
def test_each_anchors_twin_is_its_mirror_image(grids, size):
    spec = AnchorSpec(zooms=(1.0, 1.41), ratios=(1.0, 2.0, 0.5), sizes=tuple(0.2 * (i + 1) for i in range(len(grids))))
    anchors = make_anchors(grids, spec, size)
    twins = twin_order(grids, spec.per_cell)
    assert sorted(twins.tolist()) == list(range(len(anchors)))  # a permutation
    assert torch.equal(twins[twins], torch.arange(len(anchors)))  # its own inverse
    torch.testing.assert_close(anchors[twins], mirrored(anchors, size[0]), atol=1e-4, rtol=0)
    assert (twins != torch.arange(len(anchors))).any()


def small_ssd(size=(96, 64)) -> tuple[SSD, torch.Tensor]:
    torch.manual_seed(0)
    model = detector_model(backbone="scratch", pretrained="none", width=16, extra_channels=32, neck="fpn",
                           head_depth=1, prior=0.01)
    probe = SSD(3, 1, size, replace(model, neck="none", head_depth=0))
    spec = spec_from_config(model.anchors, len(probe.grids))
    net = SSD(3, spec.per_cell, size, model).eval()
    for p in net.parameters():  # an asymmetric network: its outputs on an image and its mirror image differ
        torch.nn.init.normal_(p, std=0.1)
    return net, make_anchors(net.grids, spec, size)


@torch.no_grad()
def test_flipped_outputs_are_the_same_for_an_image_and_its_mirror_image_mirrored_back():
    """Averaging over both views makes the outputs mirror-equivariant: an anchor's scores on an image
    are its twin's on the mirror image, and its box is the twin's box mirrored back. The plain outputs
    are not: the check would pass with nothing averaged only for a symmetric network."""
    net, anchors = small_ssd()
    coder, twins = BoxCoder(), twin_order(net.grids, net.per_cell)
    images = torch.randint(0, 256, (2, 3, 64, 96), generator=torch.Generator().manual_seed(1)).float()
    scores, boxes = scores_and_boxes(net, images, anchors, coder, twins)
    scores_m, boxes_m = scores_and_boxes(net, images.flip(-1), anchors, coder, twins)
    torch.testing.assert_close(scores, scores_m[:, twins], atol=1e-5, rtol=0)
    torch.testing.assert_close(boxes, mirrored(boxes_m[:, twins], 96), atol=1e-3, rtol=0)
    plain, plain_m = scores_and_boxes(net, images, anchors, coder, None), scores_and_boxes(
        net, images.flip(-1), anchors, coder, None)
    assert (plain[0] - plain_m[0][:, twins]).abs().max() > 1e-2
    # and a Detector built with flip off gives the plain outputs' detections
    info = {"input_size": [96, 64], "postprocess": {"score_threshold": 0.05, "nms_iou": 0.5, "top_k": 100,
                                                     "max_detections": 20, "vote_iou": None, "vote_power": 1.0}}
    off = Detector(net, anchors, coder, {**info, "postprocess": {**info["postprocess"], "flip": False}})(images)
    on = Detector(net, anchors, coder, {**info, "postprocess": {**info["postprocess"], "flip": True}})(images)
    top = plain[0][0].max()
    assert off[0]["scores"][0] == top and on[0]["scores"][0] != top


def test_auto_flips_where_the_training_augmentation_mirrors_images():
    colour = A.RandomBrightnessContrast(p=0.5)
    assert mirrors(A.Compose([colour, A.HorizontalFlip(p=0.5)]))
    assert mirrors(A.Compose([A.OneOf([A.HorizontalFlip(p=1.0), A.VerticalFlip(p=1.0)], p=0.5)]))  # nested
    assert not mirrors(A.Compose([colour, A.VerticalFlip(p=0.5)]))  # upside down is not mirrored
    assert not mirrors(A.Compose([A.HorizontalFlip(p=0.0)]))
    assert resolved_flip("auto", A.Compose([A.HorizontalFlip(p=0.5)])) is True
    assert resolved_flip("auto", A.Compose([colour])) is False
    assert resolved_flip(True, A.Compose([colour])) is True  # as the user says
    with pytest.raises(ValueError, match=r"train.detector.postprocess.flip: 'yes' is not auto, true or false"):
        resolved_flip("yes", A.Compose([colour]))
