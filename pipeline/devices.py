"""Where tensors go. Training is placed by Lightning (`trainer.accelerator`, `auto` by default);
everything that runs a network outside Lightning's loop (feature caches, evaluation, heatmaps, the
sliding window, `classify`) takes the device from here or from the network itself, and moves its
inputs there.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pipeline.hardware import AUTO


def loader_options(workers: int, device: torch.device, persistent: bool = True) -> dict:
    """DataLoader arguments for ``workers`` processes feeding ``device``: workers kept between epochs
    (``persistent``), batches in pinned memory for a CUDA device (faster, asynchronous copies)."""
    return {"num_workers": workers, "persistent_workers": persistent and workers > 0,
            "pin_memory": device.type == "cuda"}


def accelerator_device(accelerator: Any) -> torch.device:
    """The torch.device Lightning's ``trainer.accelerator`` setting stands for on this machine (one process)."""
    name = str(accelerator)
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name in ("gpu", "cuda") or (name == AUTO and cuda):
        if not cuda:
            raise ValueError(f"trainer.accelerator={name}: this machine has no CUDA GPU that torch can use; "
                             "use trainer.accelerator=auto (or trainer=cpu)")
        return torch.device("cuda", torch.cuda.current_device())
    if name == "mps" or (name == AUTO and mps):
        return torch.device("mps")
    return torch.device("cpu")


def training_device(datamodule) -> torch.device:
    """The device a DataModule's batches go to: its Trainer's, else (no training) the CPU."""
    trainer = datamodule.trainer
    return trainer.strategy.root_device if trainer is not None else torch.device("cpu")


def module_device(module: nn.Module) -> torch.device:
    """Where ``module``'s weights are (its first parameter or buffer); CPU for one without any."""
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` (tensors in dicts, lists and tuples) on ``device``; copies from pinned memory do not block."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=batch.is_pinned())
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch

