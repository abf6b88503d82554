"""The FCN computes the classifier's maths: pooled equality, per-window equality, any size."""

from __future__ import annotations

import pytest
import torch

from pipeline.heatmap.fcn import FullyConvolutional
from pipeline.heatmap.sliding import sliding_window_logits
from pipeline.models.classifier import build_classifier
from pipeline.models.folding import fold_batch_norms
from tests.helpers import classifier_model

SIZE = (64, 64)


def trained_like(name: str):
    """A network in eval mode with non-trivial batch-norm statistics."""
    torch.manual_seed(0)
    net = build_classifier(classifier_model(name, "none"), list("abcde"), SIZE)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def images(h, w, n=1, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, h, w), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "resnet18", "small_alexnet"])
def test_pooled_output_equals_classifier_at_training_size(name):
    net = trained_like(name)
    fcn = FullyConvolutional(net, SIZE)
    x = images(64, 64, n=3)
    with torch.no_grad():
        assert (fcn.pooled(x) - net(x)).abs().max() <= 1e-5


def test_pooled_head_stays_equal_on_any_size():
    """Average pooling then linear == linear then average: holds for every input size."""
    net = trained_like("tf_efficientnet_lite0")
    fcn = FullyConvolutional(net, SIZE)
    for h, w in ((101, 77), (33, 200), (20, 20)):
        x = images(h, w)
        with torch.no_grad():
            assert (fcn.pooled(x) - net(x)).abs().max() <= 1e-5


@pytest.mark.parametrize("h,w", [(64, 64), (128, 96), (101, 87), (77, 150)])
def test_every_alexnet_cell_is_the_classifier_on_its_window(h, w):
    net = trained_like("small_alexnet")
    fcn = FullyConvolutional(net, SIZE)
    assert fcn.geometry.valid and fcn.geometry.stride == 8
    x = images(h, w)
    with torch.no_grad():
        cells = fcn(x)[0]
        rows, cols = cells.shape[1:]
        assert (rows, cols) == ((h - 64) // 8 + 1, (w - 64) // 8 + 1)
        for i in range(rows):
            for j in range(cols):
                window = x[:, :, 8 * i : 8 * i + 64, 8 * j : 8 * j + 64]
                assert (cells[:, i, j] - net(window)[0]).abs().max() <= 1e-4, (i, j)
        sliding = sliding_window_logits(net, x[0], SIZE, stride=8, batch_size=7)
    assert (sliding - cells).abs().max() <= 1e-4


def test_inputs_smaller_than_a_window_give_one_padded_cell():
    for name in ("small_alexnet", "tf_efficientnet_lite0"):
        fcn = FullyConvolutional(trained_like(name), SIZE)
        with torch.no_grad():
            out = fcn(images(30, 45))
        assert out.shape[:2] == (1, 5) and out.shape[2] >= 1 and out.shape[3] >= 1
    net = trained_like("small_alexnet")
    assert sliding_window_logits(net, images(30, 45)[0], SIZE, 8).shape == (5, 0, 0)


def test_padded_network_cells_see_context_beyond_their_window():
    """Documented difference: lite0 pads, its cells have a receptive field larger than the window."""
    net = trained_like("tf_efficientnet_lite0")
    fcn = FullyConvolutional(net, SIZE)
    assert not fcn.geometry.valid and fcn.geometry.stride == 32
    x = images(128, 128)
    with torch.no_grad():
        cells = fcn(x)[0]
        window = net(x[:, :, :64, :64])[0]
    assert cells.shape[1:] == (4, 4)
    assert (cells[:, :2, :2].mean(dim=(1, 2)) - window).abs().max() > 1e-3  # context changes the answer


@pytest.mark.parametrize("name", ["small_alexnet", "resnet18"])
def test_the_fast_layout_computes_the_same_maps_on_channels_last_tensors(name):
    """Evaluation and dense training switch the FCN to channels-last (pipeline/models/layout.py):
    the same numbers, and the convolutions really see channels-last inputs."""
    fcn = FullyConvolutional(trained_like(name), SIZE)
    first_conv = next(m for m in fcn.features.modules() if isinstance(m, torch.nn.Conv2d))
    layouts = []
    first_conv.register_forward_pre_hook(
        lambda module, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    with torch.no_grad():
        for x in (images(96, 128, n=2), images(40, 48, n=2)):  # larger and smaller than one window
            expected = fcn(x)
            got = fcn.fast_layout()(x)
            assert got.shape == expected.shape and (got - expected).abs().max() <= 1e-4
            fcn.channels_last = False
    assert layouts == [False, True, False, True]
    assert first_conv.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("name", ["small_alexnet", "resnet18", "tf_efficientnet_lite0"])
def test_folded_batch_norms_compute_the_same_maps_and_leave_the_network_as_it_was(name):
    """The heatmap evaluation folds each batch norm that follows a convolution in a Sequential into it
    (pipeline/models/folding.py): the same maps, the trained network untouched. Small AlexNet keeps no
    batch norm, ResNet-18 its blocks'; timm's BatchNormAct2d (EfficientNet-Lite)
    carries its activation and is kept."""
    fcn = FullyConvolutional(trained_like(name), SIZE)
    norms = sum(type(m) is torch.nn.BatchNorm2d for m in fcn.modules())
    folded = fold_batch_norms(fcn).fast_layout()
    with torch.no_grad():
        for x in (images(96, 128, n=2), images(40, 48, n=2)):
            expected, got = fcn(x), folded(x)
            assert got.shape == expected.shape and (got - expected).abs().max() <= 1e-4
    left = sum(type(m) is torch.nn.BatchNorm2d for m in folded.modules())
    # ResNet-18: its stem's and its three shortcuts' (conv, norm) Sequentials are folded, its blocks' norms kept
    expected_left = {"small_alexnet": 0, "resnet18": norms - 4, "tf_efficientnet_lite0": 0}[name]
    assert (norms > 0, left) == (name != "tf_efficientnet_lite0", expected_left)
    assert sum(type(m) is torch.nn.BatchNorm2d for m in fcn.modules()) == norms and not fcn.channels_last
