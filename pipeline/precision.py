"""`trainer.precision: auto`: the training precision that is fastest for the model on this machine.

On a CPU with native bfloat16 (AVX512-BF16 or AMX), oneDNN's bf16 kernels of dense convolutions
and matrix products are about twice as fast as fp32 (one train step at batch 32, measured on a
Sapphire Rapids core: small AlexNet 25 vs 46 ms, ResNet-18 168 vs 384 ms), while its depthwise
(grouped) convolutions are slower (EfficientNet-Lite0 910 vs 790 ms). So a model without grouped
convolutions trains in bf16 mixed precision there, any other in fp32. On a GPU, bf16 mixed where
the GPU has it, else fp16 mixed. Any other value of `trainer.precision` is Lightning's own.
"""

from __future__ import annotations

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
