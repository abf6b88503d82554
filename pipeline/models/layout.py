"""Channels-last memory layout for the networks' training and evaluation.

oneDNN (CPUs) and cuDNN (GPUs) run convolutions faster on channels-last tensors: on 2 CPU cores
the heatmap network's maps of whole scenes 1.4-1.5x, its dense training step 1.2x (small windows
of the sliding window gain nothing; `python benchmarks/layout_speed.py`). The numbers are the same
up to float rounding. Exported graphs are
traced in the default layout (pipeline/export/build.py says why), so only code that trains or
evaluates switches a network to it.
"""

from __future__ import annotations

import torch


class ChannelsLast:
    """For an nn.Module whose forward passes its normalized input through :meth:`layout`."""

    channels_last = False

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def fast_layout(self):
        """Weights and, from now on, inputs in channels-last layout; returns the module."""
        self.channels_last = True
        return self.to(memory_format=torch.channels_last)
