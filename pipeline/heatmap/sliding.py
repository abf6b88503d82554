"""The sliding-window baseline: the same classifier on every window, all windows batched.

It is the honest competitor of the FCN: windows are cut as views of the image and copied only
a batch at a time, classified in large batches in eval mode under no_grad, and laid out on the
same grid as the FCN's output cells when the stride is the FCN's.
"""

from __future__ import annotations

import torch

from pipeline.models.classifier import ClassifierNet


@torch.no_grad()
def sliding_window_logits(net: ClassifierNet, image: torch.Tensor, window: tuple[int, int], stride: int,
                          batch_size: int = 256) -> torch.Tensor:
    """Logits K x rows x cols for the windows at (col * stride, row * stride) of ``image`` (3 x H x W)."""
    width, height = window
    _, h, w = image.shape
    rows = (h - height) // stride + 1 if h >= height else 0
    cols = (w - width) // stride + 1 if w >= width else 0
    if rows == 0 or cols == 0:
        classes = net(torch.zeros(1, 3, height, width, device=image.device)).shape[1]
        return torch.zeros(classes, rows, cols, device=image.device)
    grid = image.unfold(1, height, stride).unfold(2, width, stride)  # 3 x rows x cols x height x width, a view
    rows_per_batch = max(1, batch_size // cols)
    out = []
    for r in range(0, rows, rows_per_batch):
        chunk = grid[:, r : r + rows_per_batch].permute(1, 2, 0, 3, 4).reshape(-1, 3, height, width)
        out.append(net(chunk))
    return torch.cat(out).T.reshape(-1, rows, cols)
