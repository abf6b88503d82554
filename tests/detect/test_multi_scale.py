"""Multi-scale training of the detector (train.detector.multi_scale): the sizes, the anchors of each
size, the rescaled batches, and a training whose batches really change size."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch.callbacks import Callback
from mlflow.tracking import MlflowClient

from pipeline.config import compose
from pipeline.detect.anchors import spec_from_config
from pipeline.detect.scales import TrainingScales, candidate_sizes, rescale
from pipeline.detect.train import build_detector, detector_module, load_detector, train_detector
from pipeline.tracking import tracking_uri
from tests.conftest import tiny_config
from tests.helpers import detector_model


def test_the_sizes_are_multiples_of_32_around_the_input_size_which_is_among_them():
    assert candidate_sizes((320, 320), 0.25) == [(256, 256), (288, 288), (320, 320), (352, 352), (384, 384)]
    assert candidate_sizes((160, 160), 0.0) == [(160, 160)]
    assert candidate_sizes((300, 200), 0.3) == [(224, 160), (256, 160), (288, 192), (300, 200), (320, 224),
                                                (352, 224), (384, 256)]  # the aspect ratio kept
    for factor in (-0.1, 1.0):
        with pytest.raises(ValueError, match="train.detector.multi_scale"):
            candidate_sizes((160, 160), factor)


def test_a_rescaled_batch_moves_its_boxes_with_its_pixels():
    images = torch.zeros(2, 3, 160, 160, dtype=torch.uint8)
    images[0, :, 40:80, 20:60] = 255  # a white square at x 20-60, y 40-80
    boxes = [torch.tensor([[20.0, 40.0, 60.0, 80.0]]), torch.zeros(0, 4)]
    batch = {"images": images, "boxes": boxes, "labels": [torch.tensor([0]), torch.zeros(0, dtype=torch.long)]}
    out = rescale(batch, (320, 240))
    assert out["images"].shape == (2, 3, 240, 320) and out["labels"] is batch["labels"]
    assert out["boxes"][0].tolist() == [[40.0, 60.0, 120.0, 120.0]] and out["boxes"][1].shape == (0, 4)
    white = (out["images"][0, 0] > 127).nonzero()
    assert white[:, 1].min() == 40 and white[:, 1].max() == 119 and white[:, 0].min() == 60 and white[:, 0].max() == 119
    assert rescale(batch, (160, 160)) is batch


def test_each_sizes_anchors_line_up_with_the_networks_outputs_at_that_size():
    mc = detector_model(pretrained="none")
    net, anchors, _ = build_detector(mc, ["a", "b"], (160, 160))
    net.backbone.eval()  # as a frozen backbone is: the probe must leave every module's mode as it found it
    scales = TrainingScales(net, spec_from_config(mc.anchors, len(net.grids)), (160, 160), 0.5)
    assert scales.sizes == [(96, 96), (128, 128), (160, 160), (192, 192), (224, 224)]
    for size in scales.sizes:
        at_size, levels = scales.anchors(size, torch.device("cpu"))
        logits, deltas = net(torch.zeros(2, 3, size[1], size[0]))
        assert logits.shape[1] == deltas.shape[1] == len(at_size) == sum(levels), size
        if size[0] >= 160:  # a detector built at this size has as many levels: the same anchors
            assert torch.equal(at_size, build_detector(mc, ["a", "b"], size)[1]), size
    assert torch.equal(scales.anchors((160, 160), torch.device("cpu"))[0], anchors)
    assert not net.backbone.training and net.class_heads.training


class InputSizes(Callback):
    """The image sizes the network is trained on."""

    def __init__(self):
        self.sizes = set()

    def on_fit_start(self, trainer, module):
        def record(net, inputs):
            if net.training:
                self.sizes.add(tuple(inputs[0].shape[2:]))
        module.net.register_forward_pre_hook(record)


def test_a_multi_scale_training_trains_on_several_sizes_and_keeps_the_input_size_for_the_rest(tiny_data, tmp_path):
    cfg = tiny_config(tmp_path, "train.detector.epochs=2", "train.detector.freeze_epochs=1",
                      "train.detector.batch_size=4", "train.detector.multi_scale=0.5")
    seen = InputSizes()
    result = train_detector(cfg, tiny_data / "prepared/manifest.json", tiny_data / "augment", tmp_path / "det",
                            callbacks=[seen])
    assert len(seen.sizes) >= 3 and seen.sizes <= {(s, s) for s in (96, 128, 160, 192, 224)}, seen.sizes
    run = MlflowClient(tracking_uri(cfg.logger)).get_run(result["run_id"])
    assert run.data.params["derived.multi_scale_sizes"] == "96x96 128x128 160x160 192x192 224x224"
    net, anchors, _, info = load_detector(tmp_path / "det")  # evaluated and exported at the input size
    assert info["input_size"] == [160, 160] and net(torch.zeros(1, 3, 160, 160))[0].shape[1] == len(anchors)


def test_multi_scale_off_builds_no_scales_and_on_needs_the_anchor_spec():
    net, anchors, coder = build_detector(detector_model(pretrained="none"), ["a", "b"], (96, 96))
    off = compose(["model.detector.pretrained=none"])
    assert detector_module(off, net, anchors, coder, 2, (96, 96), steps=4).scales is None
    on = compose(["model.detector.pretrained=none", "train.detector.multi_scale=0.3"])
    with pytest.raises(ValueError, match="needs its anchor spec"):
        detector_module(on, net, anchors, coder, 2, (96, 96), steps=4)
