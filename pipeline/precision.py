"""`trainer.precision: auto`: the training precision that is fastest for the model on this machine.

On a CPU with native bfloat16 (AVX512-BF16 or AMX), oneDNN's bf16 kernels of dense convolutions
and matrix products are about twice as fast as fp32 (one train step at batch 32, measured on a
Sapphire Rapids core: small AlexNet 25 vs 46 ms, ResNet-18 168 vs 384 ms), while its depthwise
(grouped) convolutions are slower (EfficientNet-Lite0 910 vs 790 ms). So a model without grouped
convolutions trains in bf16 mixed precision there, any other in fp32. On a GPU, bf16 mixed where
the GPU has it, else fp16 mixed. Any other value of `trainer.precision` is Lightning's own.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

AUTO = "auto"


def cpu_has_native_bf16() -> bool:
    # the check PyTorch's own oneDNN code uses (AVX512-BF16 or AMX); no public equivalent, so a torch
    # without it counts as a CPU without native bf16 (fp32: slower there, never wrong)
    try:
        return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def has_grouped_convolutions(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) and m.groups > 1 for m in model.modules())


def resolve_precision(requested: str, accelerator: str, model: nn.Module) -> str:
    """Lightning's precision string for ``requested`` (``auto`` or one of Lightning's own)."""
    if str(requested) != AUTO:
        return str(requested)
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    if cpu_has_native_bf16() and not has_grouped_convolutions(model):
        return "bf16-mixed"
    return "32-true"


class DenseAutocast:
    """nn.Module mixin: the layers a network runs inside :meth:`dense` (dense convolutions, none grouped)
    run in ``dense_dtype`` under autocast while the rest stays in its own precision; None (the default,
    and always in evaluation and export): all as the rest. Lightning's precision settings are global,
    hence this switch."""

    dense_dtype: torch.dtype | None = None

    def dense(self, device_type: str):
        if self.dense_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=self.dense_dtype)


def dense_layers_in_bf16(requested: str, device: torch.device, model: nn.Module) -> bool:
    """``auto`` on a CPU with native bf16 where ``model`` trains in fp32 for its grouped convolutions:
    the dense layers of its :class:`DenseAutocast` parts can run in bf16 (one detector training step at
    160 and 320 px 1.03-1.17x as fast, `python benchmarks/detector_throughput.py`; BCCD's training 15 %)."""
    return (str(requested) == AUTO and device.type == "cpu" and cpu_has_native_bf16()
            and has_grouped_convolutions(model) and any(isinstance(m, DenseAutocast) for m in model.modules()))


def set_dense_precision(requested: str, device: torch.device, model: nn.Module) -> str | None:
    """Switch ``model``'s :class:`DenseAutocast` parts to bf16 where :func:`dense_layers_in_bf16`, else
    off; returns the dense layers' precision (None: as the rest)."""
    dtype = torch.bfloat16 if dense_layers_in_bf16(requested, device, model) else None
    for m in model.modules():
        if isinstance(m, DenseAutocast):
            m.dense_dtype = dtype
    return None if dtype is None else "bf16-mixed"
