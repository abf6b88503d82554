"""Fine-tuning from a trained model of this project (`model.<task>.pretrained: <path>`): a model
folder, a checkpoint or a bundle; the class outputs restart when the classes differ; weights that
do not fit are an error, never a random start."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from omegaconf import OmegaConf

from pipeline.classify.evaluate import load_classifier
from pipeline.config import compose
from pipeline.detect.settings import DetectorModel
from pipeline.detect.train import build_detector, load_detector
from pipeline.models.classifier import build_classifier
from pipeline.schema import ClassifierModel

pytestmark = pytest.mark.xdist_group("finetune")  # its module fixture is built once, on one worker

IMAGES = torch.randint(0, 256, (2, 3, 64, 64), generator=torch.Generator().manual_seed(0)).float()


def detector_model(info: dict, pretrained: str, **overrides) -> DetectorModel:
    return DetectorModel.of(OmegaConf.merge(compose().model.detector, info["model"],
                                            {"pretrained": pretrained, **overrides}))


@pytest.fixture(scope="module")
def trained_detector(bundles):
    folder = bundles / "models/detector"
    net, _, _, info = load_detector(folder)
    images = torch.nn.functional.interpolate(IMAGES, size=tuple(info["input_size"][::-1]))
    with torch.no_grad():
        logits, deltas = net(images)
    return folder, info, images, logits, deltas


@pytest.mark.parametrize("source", ["models/detector", "models/detector/last.ckpt", "detector"])
def test_a_detector_starts_from_a_trained_folder_checkpoint_or_bundle(bundles, trained_detector, source):
    folder, info, images, logits, deltas = trained_detector
    net, _, _ = build_detector(detector_model(info, str(bundles / source)), info["classes"], info["input_size"])
    fresh, _, _ = build_detector(detector_model(info, "none"), info["classes"], info["input_size"])
    with torch.no_grad():
        out, fresh_out = net.eval()(images), fresh.eval()(images)
    if source.endswith("last.ckpt"):  # the last epoch's weights, not the best: only the shapes are the same
        assert not torch.equal(out[0], fresh_out[0])
        last = torch.load(bundles / source, weights_only=True)["state_dict"]
        assert all(torch.equal(v, last[f"net.{k}"]) for k, v in net.state_dict().items())
    else:  # the same classes: every weight, class outputs included, so the same outputs
        assert torch.allclose(out[0], logits, atol=1e-5) and torch.allclose(out[1], deltas, atol=1e-5)
        assert not torch.allclose(fresh_out[0], logits, atol=1e-3)


@pytest.mark.parametrize("classes", [["cat", "dog", "whale"], ["only"]])
def test_other_classes_restart_the_class_outputs_and_keep_everything_else(bundles, trained_detector, classes):
    """Renamed classes (same count) or another count: the class convolutions start afresh."""
    folder, info, images, logits, deltas = trained_detector
    classes = classes if len(classes) != len(info["classes"]) else [f"new_{c}" for c in info["classes"]]
    net, _, _ = build_detector(detector_model(info, str(folder)), classes, info["input_size"])
    source = load_detector(folder)[0].state_dict()
    state = net.state_dict()
    rebuilt = {k for k in state if k.startswith("class_heads.") and ".out." in k}
    assert rebuilt and all(torch.equal(state[k], source[k]) for k in state if k not in rebuilt)
    assert all(state[k].shape != source[k].shape or not torch.equal(state[k], source[k]) for k in rebuilt)
    with torch.no_grad():
        assert torch.allclose(net.eval()(images)[1], deltas, atol=1e-5)  # the box outputs are the source's


def test_a_detector_of_another_layout_is_an_error_naming_the_tensors(trained_detector):
    folder, info, *_ = trained_detector
    with pytest.raises(ValueError, match=r"do not fit this model \(.*other shapes: .* -> "):
        build_detector(detector_model(info, str(folder), extra_channels=32), info["classes"], info["input_size"])


def test_a_classifier_starts_from_its_model_folder_and_refuses_a_detectors(bundles):
    folder = bundles / "models/classifier"
    info = json.loads((folder / "model.json").read_text())
    trained = load_classifier(folder)[0].eval()
    model = ClassifierModel.of(OmegaConf.merge(compose().model.classifier, info["model"], {"pretrained": str(folder)}))
    net = build_classifier(model, info["classes"], info["input_size"]).eval()
    images = torch.nn.functional.interpolate(IMAGES, size=tuple(info["input_size"][::-1]))
    with torch.no_grad():
        assert torch.allclose(net(images), trained(images), atol=1e-5)
    renamed = build_classifier(model, ["x", "y", "z", "w"][:len(info["classes"])], info["input_size"])
    assert not torch.equal(renamed.head.fc8.weight, net.head.fc8.weight)
    assert torch.equal(renamed.head.fc7.weight, net.head.fc7.weight)  # hidden layers kept
    with pytest.raises(ValueError, match="missing in the source: features"):
        build_classifier(replace(model, pretrained=str(bundles / "models/detector")), info["classes"],
                         info["input_size"])


def test_a_folder_that_is_no_model_is_a_clear_error(tmp_path, trained_detector):
    _, info, *_ = trained_detector
    with pytest.raises(FileNotFoundError, match="model.json and best.ckpt .* or bundle.json and model.pt2"):
        build_detector(detector_model(info, str(tmp_path)), info["classes"], info["input_size"])
