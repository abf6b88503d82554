"""`trainer.precision: auto`: bf16 mixed for models without grouped convolutions on a CPU with
native bf16, fp32 otherwise, with the dense layers a network marks in bf16 there; Lightning's own
values pass through."""

import pytest
import torch
from torch import nn

import pipeline.precision as precision
from pipeline.models.backbones import build_backbone
from pipeline.precision import DenseAutocast, resolve_precision, set_dense_precision
from pipeline.training import trainer_settings
from tests.conftest import tiny_config

DENSE = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3))
DEPTHWISE = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3, groups=8))


@pytest.mark.parametrize("native, model, expected", [(True, DENSE, "bf16-mixed"), (True, DEPTHWISE, "32-true"),
                                                     (False, DENSE, "32-true"), (False, DEPTHWISE, "32-true")])
def test_auto_on_a_cpu_depends_on_native_bf16_and_grouped_convolutions(monkeypatch, native, model, expected):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", "cpu", model) == expected


@pytest.mark.parametrize("bf16, expected", [(True, "bf16-mixed"), (False, "16-mixed")])
def test_auto_on_a_gpu_is_bf16_where_the_gpu_has_it(monkeypatch, bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert resolve_precision("auto", "gpu", DEPTHWISE) == expected


def test_a_precision_lightning_knows_is_kept(monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("32-true", "cpu", DENSE) == "32-true"
    assert resolve_precision("bf16-mixed", "cpu", DEPTHWISE) == "bf16-mixed"


def test_the_trainer_gets_the_resolved_precision_of_the_projects_backbones(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    cfg = tiny_config(tmp_path)
    assert cfg.trainer.precision == "auto"
    assert trainer_settings(cfg, build_backbone("small_alexnet").features)["precision"] == "bf16-mixed"
    assert trainer_settings(cfg, build_backbone("tf_efficientnet_lite0").features)["precision"] == "32-true"
    marked = nn.Sequential(build_backbone("tf_efficientnet_lite0").features, MarkedHead())
    assert trainer_settings(cfg, marked)["precision"] == "32-true"
    assert marked[1].dense_dtype == torch.bfloat16 and marked.dense_precision == "bf16-mixed"


class MarkedHead(DenseAutocast, nn.Module):
    """A network part whose dense layers may run in bf16."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3)

    def forward(self, x):
        with self.dense(x.device.type):
            return self.conv(x)


@pytest.mark.parametrize("native, requested, device, backbone, expected", [
    (True, "auto", "cpu", DEPTHWISE, "bf16-mixed"),
    (False, "auto", "cpu", DEPTHWISE, None),  # no native bf16: fp32 everywhere
    (True, "auto", "cpu", DENSE, None),  # no grouped convolutions: the whole model trains in bf16 mixed
    (True, "32-true", "cpu", DEPTHWISE, None),  # Lightning's own value: as asked
    (True, "auto", "cuda", DEPTHWISE, None),  # a GPU: the whole model in Lightning's mixed precision
])
def test_the_dense_layers_run_in_bf16_where_the_rest_trains_in_fp32_for_its_grouped_convolutions(
        monkeypatch, native, requested, device, backbone, expected):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    model = nn.Sequential(backbone, MarkedHead())
    model[1].dense_dtype = torch.float16  # whatever was set before is replaced
    assert set_dense_precision(requested, torch.device(device), model) == expected
    assert model[1].dense_dtype == (torch.bfloat16 if expected else None)
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 12, 12))
    assert out.dtype == (torch.bfloat16 if expected else torch.float32)
    assert set_dense_precision(requested, torch.device(device), DEPTHWISE) is None  # nothing marked: nothing to do
