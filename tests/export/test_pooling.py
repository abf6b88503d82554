"""Max pooling in exported graphs takes any input size, whatever torch exports it (pipeline/export/pooling.py)."""

import pytest
import torch
from torch import nn

from pipeline.export import pooling
from pipeline.export.pooling import WindowMax, portable_max_pooling


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 5), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3), nn.MaxPool2d((2, 2))).eval()


@pytest.mark.parametrize("size", [(64, 64), (65, 67), (97, 130)])
def test_window_max_is_max_pooling(size):
    x = torch.rand(2, 3, *size)
    assert torch.equal(WindowMax(2)(x), nn.MaxPool2d(2)(x))
    assert torch.equal(WindowMax(3)(x), nn.MaxPool2d(3)(x))


def test_an_exported_graph_with_portable_pooling_takes_any_size_and_computes_the_same(monkeypatch):
    monkeypatch.setattr(pooling, "max_pool_exports_any_size", lambda: False)  # as torch 2.11 exports
    original = net()
    graph = portable_max_pooling(original)
    assert [type(m) for m in graph] == [nn.Conv2d, WindowMax, nn.Conv2d, WindowMax]
    assert [type(m) for m in original][1] is nn.MaxPool2d  # the model itself is left as it was
    dims = ({2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO},)
    program = torch.export.export(graph, (torch.rand(1, 3, 96, 128),), dynamic_shapes=dims).module()
    for size in [(96, 128), (97, 129), (63, 70)]:
        x = torch.rand(1, 3, *size)
        assert torch.equal(program(x), original(x)), size


def test_pooling_is_left_alone_where_this_torch_exports_it_for_any_size(monkeypatch):
    monkeypatch.setattr(pooling, "max_pool_exports_any_size", lambda: True)
    graph = net()
    assert portable_max_pooling(graph) is graph
    padded = nn.Sequential(nn.MaxPool2d(2, padding=1))
    monkeypatch.setattr(pooling, "max_pool_exports_any_size", lambda: False)
    assert isinstance(portable_max_pooling(padded)[0], nn.MaxPool2d)  # not a plain pooling: kept
