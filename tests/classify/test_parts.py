"""Schedules, class weights, backbones and pretrained-weight failures."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from pipeline.classify.bundled import format_line
from pipeline.classify.module import class_weights
from pipeline.classify.settings import ClassifierTrain
from pipeline.config import compose
from pipeline.models.classifier import build_classifier
from pipeline.models.pretrained import PretrainedUnavailable
from pipeline.schema import Optimizer, OptimizerName
from pipeline.transfer import TrainingPlan, group_multipliers, make_optimizer, phase_schedule
from tests.helpers import classifier_model


def test_one_cycle_warms_up_then_anneals():
    shape = phase_schedule("one_cycle", pct_start=0.25, div=25, final_div=1e4)
    assert shape(0) == pytest.approx(1 / 25) and shape(0.25) == pytest.approx(1.0)
    assert shape(1.0) == pytest.approx(1e-4) and shape(0.5) < 1.0
    assert phase_schedule("cosine")(0) == 1.0 and phase_schedule("constant")(0.7) == 1.0
    with pytest.raises(ValueError, match="one_cycle"):
        phase_schedule("linear")


def test_learning_rate_multipliers_take_the_last_per_group_and_refuse_too_few():
    assert group_multipliers([0.1, 0.3, 1.0], 2) == [0.3, 1.0]  # a classifier's list on a two-group network
    assert group_multipliers([0.1, 0.3, 1.0], 3) == [0.1, 0.3, 1.0]
    with pytest.raises(ValueError, match=r"lr_mult \[0.1, 1.0\]: this network trains 3 parameter groups"):
        group_multipliers([0.1, 1.0], 3)


def test_auto_class_weights_balance_the_classes():
    weights = class_weights("auto", np.array([90, 10]))
    assert weights.tolist() == pytest.approx([100 / 180, 100 / 20])
    assert (weights * torch.tensor([90.0, 10.0])).tolist() == pytest.approx([50, 50])  # equal total weight
    assert class_weights(None, np.array([1, 2])) is None
    assert class_weights([1, 3], np.array([5, 5])).tolist() == [1, 3]
    with pytest.raises(ValueError, match="2 classes"):
        class_weights([1, 2, 3], np.array([5, 5]))


@pytest.mark.parametrize("name, size", [("tf_efficientnet_lite0", 224), ("tf_efficientnet_lite1", 240),
                                        ("tf_efficientnet_lite2", 260)])
def test_lite_imagenet_weights_load_offline_and_recognise_a_cat(name, size):
    """The packaged weights mapped onto timm: scikit-image's chelsea is a cat, coffee an espresso."""
    import timm
    from skimage import data

    from pipeline.models.pretrained import lite_imagenet_state_dict

    model = timm.create_model(name, pretrained=False)
    model.load_state_dict(lite_imagenet_state_dict(name, model))
    pictures = torch.stack([torch.nn.functional.interpolate(torch.from_numpy(picture).permute(2, 0, 1)[None].float(),
                                                            size=(size, size), mode="bilinear")[0]
                            for picture in (data.chelsea(), data.coffee())])
    with torch.no_grad():
        cat, coffee = model.eval()((pictures / 255 - 0.5) / 0.5).argmax(1).tolist()
    assert cat in (281, 282, 285) and coffee == 967  # tabby, tiger cat, Egyptian cat; espresso


@pytest.mark.parametrize("preset, name", [("lite1", "tf_efficientnet_lite1"), ("lite2", "tf_efficientnet_lite2")])
def test_the_larger_lite_presets_give_a_classifier_its_packaged_imagenet_weights(preset, name):
    import timm

    from pipeline.models.pretrained import lite_imagenet_state_dict
    from pipeline.schema import ClassifierModel

    model = ClassifierModel.of(compose([f"model/classifier={preset}"]).model.classifier)
    assert (model.name, model.pretrained) == (name, "imagenet")
    net = build_classifier(model, list("ab"), (64, 64)).eval()
    packaged = lite_imagenet_state_dict(name, timm.create_model(name, pretrained=False))
    stem = next(net.parameters())  # the backbone's first convolution
    assert torch.equal(stem, packaged["conv_stem.weight"])
    assert net(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)).shape == (2, 2)


def test_torchvision_imagenet_download_fails_fast_with_a_fix():
    with pytest.raises(PretrainedUnavailable, match="download.pytorch.org.*pretrained"):
        build_classifier(classifier_model("resnet18", "imagenet"), list("abc"), (64, 64))


def test_small_alexnet_has_no_imagenet_weights():
    with pytest.raises(ValueError, match="from scratch"):
        build_classifier(classifier_model("small_alexnet", "imagenet"), list("abc"), (64, 64))


@pytest.mark.parametrize("name", ["small_alexnet", "tf_efficientnet_lite0", "resnet18", "alexnet", "squeezenet1_1"])
def test_backbones_classify_uint8_images(name):
    net = build_classifier(classifier_model(name, "none"), list("abcd"), (64, 64)).eval()
    out = net(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8))
    assert out.shape == (2, 4) and len(net.param_groups()) == 3
    grouped = {id(p) for g in net.param_groups() for p in g}
    assert grouped == {id(p) for p in net.parameters()}  # every weight in exactly one learning-rate group


def test_missing_checkpoint_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="pretrained weights not found"):
        build_classifier(classifier_model("small_alexnet", str(tmp_path / "x.ckpt")), list("abc"), (64, 64))


def test_format_line_matches_the_classic_one_line_format():
    line = format_line("dolphin1.jpg", np.array([0.99968, 0.00032]), ["dolphin", "seahorse"])
    assert line == "dolphin1.jpg is a dolphin dolphin=99.968% seahorse=0.032%"


def transfer_module(name: str, pretrained: str):
    from pipeline.classify.module import ClassifierModule

    net = build_classifier(classifier_model(name, pretrained), ["a", "b"], (64, 64))
    settings = ClassifierTrain.of(OmegaConf.merge(compose().train.classifier, {
        "optimizer": {"name": "adamw", "momentum": 0.9}, "lr": 1e-2, "weight_decay": 0.0, "lr_mult": [0.1, 0.3, 1.0],
        "schedule": "constant", "label_smoothing": 0.0}))
    return ClassifierModule(net, ["a", "b"], TrainingPlan(settings, 0, 2, (1, 1), 0), None)


def test_a_frozen_stem_keeps_its_weights_and_statistics_while_the_rest_trains():
    module = transfer_module("tf_efficientnet_lite0", "imagenet")
    module.keep_stem_frozen(True, "train.classifier.frozen_stem")
    module.train()
    module.set_backbone_trainable(True)  # the fine-tuning phase: all layers but the stem
    stem = {k: v.clone() for layer in module.net.stem() for k, v in layer.state_dict().items()}
    later = module.net.groups[-1]
    later_before = [p.clone() for p in later.parameters()]
    assert len(stem) > 5 and not any(p.requires_grad for layer in module.net.stem() for p in layer.parameters())
    optimizer = module.configure_optimizers()["optimizer"]
    images = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8)
    module.loss(module.net(images), torch.tensor([0, 1, 0, 1])).backward()
    optimizer.step()
    after = {k: v for layer in module.net.stem() for k, v in layer.state_dict().items()}
    assert all(torch.equal(stem[k], after[k]) for k in stem)  # weights and batch-norm running statistics
    assert any(not torch.equal(a, b) for a, b in zip(later_before, later.parameters()))


@pytest.mark.parametrize("name", [OptimizerName.adamw, OptimizerName.adam])
def test_the_adams_step_fused_on_the_cpu_as_torchs_loop_would(name, seed=0):
    torch.manual_seed(seed)
    module = transfer_module("small_alexnet", "none")
    module.net.eval()  # no dropout: both networks see the same gradients
    optimizer = module.configure_optimizers()["optimizer"]
    assert [group["fused"] for group in optimizer.param_groups] == [True] * len(optimizer.param_groups)
    plain_net, start = copy.deepcopy(module.net), torch.cat([p.detach().flatten() for p in module.net.parameters()])
    spec = Optimizer(name=name, momentum=0.9)
    fused = make_optimizer(spec, [{"params": module.net.parameters(), "lr": 1e-2}], 1e-2, 0.5)
    plain = torch.optim.AdamW if name is OptimizerName.adamw else torch.optim.Adam
    plain = plain(plain_net.parameters(), lr=1e-2, betas=(0.9, 0.999), weight_decay=0.5, foreach=False)
    images, labels = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8), torch.tensor([0, 1, 0, 1])
    for net, step in ((module.net, fused), (plain_net, plain)):
        for _ in range(3):
            step.zero_grad()
            module.loss(net(images), labels).backward()
            step.step()
    # the same steps within float rounding, as a whole: where a gradient is near zero Adam divides
    # rounding by rounding, so single weights may differ by a good part of a step
    moved = [torch.cat([p.detach().flatten() for p in net.parameters()]) - start for net in (module.net, plain_net)]
    assert (moved[0] - moved[1]).norm() < 1e-4 * moved[1].norm()


def test_the_adams_take_torchs_default_on_a_device_without_the_fused_kernel():
    weights = torch.nn.Linear(3, 2, device="meta")
    optimizer = make_optimizer(Optimizer(name=OptimizerName.adamw, momentum=0.9), [{"params": weights.parameters()}],
                               1e-3, 0.0)
    assert optimizer.param_groups[0]["fused"] is None and len(optimizer.param_groups[0]["params"]) == 2


def test_a_frozen_stem_on_a_network_without_one_is_an_error():
    module = transfer_module("small_alexnet", "none")
    with pytest.raises(ValueError, match="frozen_stem: this backbone has no stem.*set train.fcn.frozen_stem=false"):
        module.keep_stem_frozen(True, "train.fcn.frozen_stem")
    module.keep_stem_frozen(False, "train.fcn.frozen_stem")  # off: nothing to find


@pytest.mark.parametrize("name, size, message", [
    ("resnet18", (8, 8), r"input size \[8, 8\] is smaller than resnet18's stride \(32 px .*at least \[32, 32\]"),
    ("resnet18", (64, 24), r"input size \[64, 24\] is smaller than resnet18's stride"),
    ("alexnet", (40, 40), r"alexnet cannot take input size \[40, 40\] .*set augment.<model>.input_size larger"),
])
def test_an_input_the_backbone_cannot_learn_from_is_refused_when_the_network_is_built(name, size, message):
    with pytest.raises(ValueError, match=message):
        build_classifier(classifier_model(name, "none"), list("ab"), size)
    build_classifier(classifier_model(name, "none"), list("ab"), (64, 64))  # the default size passes
