"""Box coding: what the box head predicts for an anchor, and back.

- ``ssd`` (default): centre offsets in anchor widths/heights and log size ratios, divided by the
  variances (0.1, 0.2) as in the SSD paper's code.
- ``tanh`` (fast.ai's SSD lesson): tanh-bounded activations; the centre moves at most half
  an anchor, the size stays within 0.5x-1.5x of the anchor. Targets outside that range are
  clipped when encoded.

``decode(encode(boxes))`` gives the boxes back (exactly up to float error; for ``tanh`` within
its range).
"""

from __future__ import annotations

import torch

TANH_LIMIT = 1 - 1e-6


def centre_size(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]


def corners(centre: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1)


class BoxCoder:
    def __init__(self, kind: str = "ssd", variances: tuple[float, float] = (0.1, 0.2)):
        if kind not in ("ssd", "tanh"):
            raise ValueError(f"box coding {kind!r}: choose ssd or tanh")
        self.kind, self.variances = kind, variances

    def encode(self, boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """Targets (... x 4) for ``boxes`` matched to ``anchors`` (both xyxy, same shape)."""
        bc, bs = centre_size(boxes)
        ac, asize = centre_size(anchors)
        if self.kind == "ssd":
            return torch.cat([(bc - ac) / asize / self.variances[0],
                              torch.log(bs.clamp(min=1e-6) / asize) / self.variances[1]], dim=-1)
        raw = torch.cat([2 * (bc - ac) / asize, 2 * (bs / asize - 1)], dim=-1)
        return torch.atanh(raw.clamp(-TANH_LIMIT, TANH_LIMIT))

    def decode(self, deltas: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        """Boxes (xyxy) from the head's outputs for ``anchors``."""
        ac, asize = centre_size(anchors)
        if self.kind == "ssd":
            centre = ac + deltas[..., :2] * self.variances[0] * asize
            size = asize * torch.exp((deltas[..., 2:] * self.variances[1]).clamp(max=10.0))
            return corners(centre, size)
        t = torch.tanh(deltas)
        return corners(ac + t[..., :2] / 2 * asize, (t[..., 2:] / 2 + 1) * asize)
