"""Max pooling that torch.export captures for any input size, on every torch the pipeline runs on.

torch 2.11's export of ``max_pool2d`` on a dynamic height or width adds guards on the size's
parity (``(H - 6) % 2 == 0``): the captured FCN then refuses every scene size but the traced
one's. Torch 2.14 does not. The same pooling written as windows taken with ``Tensor.unfold`` and
their maximum is exact (the same numbers) and is captured without guards in both, at some cost in
speed under ONNX Runtime; so it replaces ``nn.MaxPool2d`` in an exported graph only where this
torch needs it. Hand-written because neither torch nor torchvision offers a guard-free variant.
"""

from __future__ import annotations

import copy
import functools

import torch
from torch import nn


class WindowMax(nn.Module):
    """``nn.MaxPool2d(k, stride=k)`` without padding or dilation, in floor mode, as unfold + max."""

    def __init__(self, kernel: int):
        super().__init__()
        self.kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel
        return x.unfold(2, k, k).unfold(3, k, k).amax(dim=(-1, -2))


def square(value) -> int | None:
    values = value if isinstance(value, tuple) else (value, value)
    return values[0] if values[0] == values[1] else None


def replaceable(pool: nn.MaxPool2d) -> bool:
    k = square(pool.kernel_size)
    return (k is not None and square(pool.stride) == k and square(pool.padding) == 0 and square(pool.dilation) == 1
            and not pool.ceil_mode and not pool.return_indices)


@functools.cache
def max_pool_exports_any_size() -> bool:
    """Whether this torch's export of max pooling on a dynamic size takes other sizes than the traced one."""
    dims = ({2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO},)
    program = torch.export.export(nn.MaxPool2d(2).eval(), (torch.zeros(1, 1, 8, 8),), dynamic_shapes=dims)
    try:
        program.module()(torch.zeros(1, 1, 9, 9))
    except AssertionError:  # "Guard failed: ..."
        return False
    return True


def portable_max_pooling(graph: nn.Module) -> nn.Module:
    """``graph``, or where this torch needs it a copy with every plain max pooling as :class:`WindowMax`."""
    pools = [name for name, m in graph.named_modules() if isinstance(m, nn.MaxPool2d) and replaceable(m)]
    if not pools or max_pool_exports_any_size():
        return graph
    graph = copy.deepcopy(graph)
    for name in pools:
        parent, _, child = name.rpartition(".")
        owner = graph.get_submodule(parent) if parent else graph
        setattr(owner, child, WindowMax(square(owner.get_submodule(child).kernel_size)))
    return graph
