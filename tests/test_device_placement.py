"""Tensors follow the network's device, on machines without a GPU too: the network (or a stand-in
that records where its inputs arrive) sits on PyTorch's ``meta`` device, which no CPU tensor may
meet, so any batch left on the CPU beside it fails here as it would beside a GPU.
(tests/test_devices.py trains every task on each real device a machine has.)"""

from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from pipeline.classify.data import data_from_config
from pipeline.classify.evaluate import predict_split
from pipeline.config import compose
from pipeline.heatmap.dense import DenseModule
from pipeline.heatmap.fcn import FullyConvolutional
from pipeline.heatmap.settings import DenseTrain
from pipeline.heatmap.sliding import sliding_window_logits
from pipeline.heatmap.stage import heatmap_methods
from pipeline.models.classifier import build_classifier
from pipeline.multilabel.data import MultiLabelData
from pipeline.multilabel.evaluate import predict_split as predict_multilabel
from pipeline.schema import ClassifierModel

META = torch.device("meta")


class RecordingNet(nn.Module):
    """A classifier stand-in with its weights on ``meta``: records the device of each input and
    answers with CPU logits of the right shape."""

    def __init__(self, classes: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(1, device=META))
        self.classes, self.seen = classes, []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.seen.append(images.device)
        return torch.zeros(len(images), self.classes)


def stand_in_trainer(module) -> SimpleNamespace:
    """What a DataModule reads of its Trainer, with the module's device as the training's."""
    return SimpleNamespace(current_epoch=0, lightning_module=module, strategy=SimpleNamespace(root_device=META))


@pytest.fixture
def classifier_data(tiny_data):
    cfg = compose(["data=synthetic_tiny", "train.classifier.num_workers=0"])
    return cfg, data_from_config(tiny_data / "prepared/manifest.json", tiny_data / "augment", cfg.train.classifier, 0)


def test_the_frozen_backbone_encodes_its_feature_cache_on_the_networks_device(classifier_data):
    cfg, data = classifier_data
    model = ClassifierModel.of(OmegaConf.merge(cfg.model.classifier, {"pretrained": "none"}))
    net = build_classifier(model, data.classes, data.input_size()).to(META)
    data.trainer = stand_in_trainer(SimpleNamespace(net=net))
    data.cache_until_epoch = 1
    batch = next(iter(data.train_dataloader()))  # encodes train and val with the network, then serves features
    assert batch["features"].device == META and batch["labels"].device == META
    assert data.cached["val"].features.shape[0] == len(data.items["val"])


def test_classifier_and_multilabel_evaluation_send_images_to_the_networks_device(classifier_data, tiny_data):
    _, data = classifier_data
    net = RecordingNet(len(data.classes))
    probs, labels, _ = predict_split(net, data, "val")
    assert set(net.seen) == {META} and probs.shape == (len(data.items["val"]), len(data.classes))

    multilabel = MultiLabelData(tiny_data / "prepared/manifest.json", tiny_data / "augment", 8, 0, 0)
    net = RecordingNet(len(multilabel.classes))
    probs, targets, _ = predict_multilabel(net, multilabel, "val")
    assert set(net.seen) == {META} and targets.shape == probs.shape


def test_heatmap_methods_run_where_the_network_is(classifier_data):
    cfg, data = classifier_data
    model = ClassifierModel.of(OmegaConf.merge(cfg.model.fcn, {"pretrained": "none"}))
    window = data.input_size()
    fcn = FullyConvolutional(build_classifier(model, data.classes, window), window).eval()
    image = torch.randint(0, 255, (3, 2 * window[1], 3 * window[0]), dtype=torch.uint8)
    on_cpu = {name: method.logits(image) for name, method in heatmap_methods(fcn, None, [0.0]).items()}
    recorded = []
    fcn.features.register_forward_pre_hook(lambda module, inputs: recorded.append(inputs[0].device))
    fcn.to(META)
    for name, method in heatmap_methods(fcn, None, [0.0]).items():
        with pytest.raises(NotImplementedError):  # a meta result has no values to bring back to the CPU
            method.logits(image)
        assert recorded.pop() == META, name
    assert all(m.device.type == "cpu" and m.shape[0] == len(data.classes) for m in on_cpu.values())
    empty = sliding_window_logits(fcn.pooled, torch.zeros(3, 8, 8, dtype=torch.uint8, device=META), window, 8)
    assert empty.device == META and empty.shape[1:] == (0, 0)


def test_the_fcns_dense_phase_sends_only_the_images_and_works_out_its_views_and_targets_on_the_host(classifier_data):
    cfg, data = classifier_data
    model = ClassifierModel.of(OmegaConf.merge(cfg.model.fcn, {"pretrained": "none"}))
    window = data.input_size()
    fcn = FullyConvolutional(build_classifier(model, [*data.classes, "background"], window), window)
    module = DenseModule(fcn, len(data.classes), 0.25, DenseTrain.of(cfg.train.fcn.dense), None, 1, 0)
    batch = {"images": torch.randint(0, 255, (2, 3, 96, 120), dtype=torch.uint8),
             "boxes": [torch.tensor([[10.0, 20.0, 40.0, 50.0]]), torch.zeros(0, 4)],
             "labels": [torch.tensor([1]), torch.zeros(0, dtype=torch.long)]}
    sent = module.transfer_batch_to_device(batch, META, 0)
    assert sent["images"].device == META
    assert [b.device.type for b in sent["boxes"] + sent["labels"]] == ["cpu"] * 4
    fcn.to(META)  # a box read back from the network's device would fail here: a meta tensor holds no numbers
    assert module.training_step(sent, 0).device == META
    module.validation_step(sent, 0)  # and so would its validation shares, were they worked out there
