"""Dense fine-tuning of an FCN from box-derived cell targets.

The converted classifier only ever saw centred object patches and random background. Here every
output cell of a training view is an example: a cell's target is the class of the ground-truth
box that matches the object box it looks for (its window shrunk by the patch context) with
IoU >= ``positive_iou``, background below ``negative_iou`` and ignored in between.

Training views are ``crop`` x ``crop`` cut-outs of the augmented detection images. Most are
object-centred: a random object is resized to the size the window looks for (times a random
factor of up to ``exp(+-scale_jitter)``) and lands anywhere a cell can see it, so every view
holds positives and the objects, fragments and textures around them as negatives. The others
are cut at a random scale in ``scales`` and a random place.
"""

from __future__ import annotations

import math

import lightning as L
import torch
from torch.nn import functional as F
from torchvision.ops import box_iou

from pipeline.heatmap.fcn import FullyConvolutional, Geometry
from pipeline.heatmap.settings import DenseTrain
from pipeline.schema import Optimizer
from pipeline.transfer import SeededSteps, make_optimizer, phase_schedule

IGNORE = -100
FILL = 114.0  # grey outside the image, as the patch view's crops


def uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


def resize_image(image: torch.Tensor, scale: float) -> torch.Tensor:
    """3 x H x W float, bilinear (antialiased when shrinking)."""
    size = [max(1, round(v * scale)) for v in image.shape[1:]]
    return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=scale < 1)[0]


def training_view(image: torch.Tensor, boxes: torch.Tensor, object_side: float, window: tuple[int, int], crop: int,
                  scales: tuple[float, float], scale_jitter: float, object_fraction: float):
    """One crop x crop view of ``image`` (3 x H x W float) and its boxes (xyxy, not clipped);
    random draws from torch's global generator (seeded per step)."""
    if len(boxes) and float(torch.rand(())) < object_fraction:
        box = boxes[int(torch.randint(len(boxes), ()))]
        side = float(torch.maximum(box[2] - box[0], box[3] - box[1]).clamp(min=1.0))
        scale = min(max(object_side / side * math.exp(uniform(-scale_jitter, scale_jitter)), scales[0]), scales[1])
        cx, cy = float(box[0] + box[2]) / 2 * scale, float(box[1] + box[3]) / 2 * scale
    else:
        scale = math.exp(uniform(math.log(scales[0]), math.log(scales[1])))
        cx, cy = uniform(0, image.shape[2] * scale), uniform(0, image.shape[1] * scale)
    resized = resize_image(image, scale)
    # the chosen point lands where some cell's window centre can be
    x0 = round(cx - uniform(window[0] / 2, crop - window[0] / 2))
    y0 = round(cy - uniform(window[1] / 2, crop - window[1] / 2))
    view = torch.full((3, crop, crop), FILL, dtype=image.dtype, device=image.device)
    h, w = resized.shape[1:]
    sx, sy, ex, ey = max(x0, 0), max(y0, 0), min(x0 + crop, w), min(y0 + crop, h)
    if ex > sx and ey > sy:
        view[:, sy - y0:ey - y0, sx - x0:ex - x0] = resized[:, sy:ey, sx:ex]
    return view, boxes * scale - torch.tensor([x0, y0, x0, y0], dtype=boxes.dtype, device=boxes.device)


def cell_targets(geometry: Geometry, rows: int, cols: int, boxes: torch.Tensor, labels: torch.Tensor,
                 context: float, background: int, positive_iou: float = 0.5, negative_iou: float = 0.3) -> torch.Tensor:
    """rows x cols class ids: matched object class, ``background`` or IGNORE (boxes: xyxy input pixels)."""
    cells = geometry.object_boxes(rows, cols, context).reshape(-1, 4).to(boxes.device)
    target = torch.full((rows * cols,), background, dtype=torch.long, device=boxes.device)
    if len(boxes):
        best, index = box_iou(cells, boxes.float()).max(dim=1)
        target[(best >= negative_iou) & (best < positive_iou)] = IGNORE
        positive = best >= positive_iou
        target[positive] = labels.long()[index[positive]]
    return target.reshape(rows, cols)


class DenseModule(SeededSteps, L.LightningModule):
    """Trains ``net`` (a FullyConvolutional) on per-cell cross-entropy; metrics are prefixed ``dense_``.

    ``dense``: `train.fcn.dense` (its views: crop, scales, scale_jitter, object_fraction, see
    :func:`training_view`); ``optimizer``: `train.fcn.optimizer`; ``context``: the patch context.
    """

    def __init__(self, net: FullyConvolutional, background: int, context: float, dense: DenseTrain,
                 optimizer: Optimizer, steps_per_epoch: int, seed: int):
        super().__init__()
        self.net, self.background, self.context, self.dense = net, background, context, dense
        self.optimizer, self.steps_per_epoch, self.seed = optimizer, steps_per_epoch, seed

    def on_fit_start(self) -> None:
        self.net.fast_layout()  # as the patch classifier trained (pipeline.transfer)

    def transfer_batch_to_device(self, batch: dict, device: torch.device, dataloader_idx: int) -> dict:
        """The images go to the network's device; the boxes and labels stay on the host, where each view's
        crop and the cells' targets are worked out (read back from a GPU, every box would wait for its work)."""
        return {**batch, "images": super().transfer_batch_to_device(batch["images"], device, dataloader_idx)}

    def step(self, images: torch.Tensor, boxes: list, labels: list, split: str) -> torch.Tensor:
        logits = self.net(images)
        rows, cols = logits.shape[2:]
        host = torch.stack([cell_targets(self.net.geometry, rows, cols, b, lab, self.context, self.background,
                                         self.dense.positive_iou, self.dense.negative_iou)
                            for b, lab in zip(boxes, labels)])
        targets = host.to(logits.device)  # one copy per step
        loss = F.cross_entropy(logits, targets, ignore_index=IGNORE)
        n = len(images)
        self.log(f"dense_{split}_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        if split == "val":  # shares as sums over counts known on the host: no read back from the device
            right = logits.argmax(1) == targets
            for name, cells in (("cell_acc", lambda t: t != IGNORE),  # object recall: the cells that make the heatmap
                                ("object_recall", lambda t: (t != IGNORE) & (t != self.background))):
                if count := int(cells(host).sum()):
                    self.log(f"dense_val_{name}", (right & cells(targets)).sum() / count, on_epoch=True, batch_size=n)
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        d, g = self.dense, self.net.geometry
        object_side = g.window[0] / (1 + self.context)
        made = [training_view(image.float(), boxes, object_side, g.window, d.crop, tuple(d.scales), d.scale_jitter,
                              d.object_fraction)
                for image, boxes in zip(batch["images"], batch["boxes"])]
        return self.step(torch.stack([m[0] for m in made]), [m[1] for m in made], batch["labels"], "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:  # whole images as they are
        self.step(batch["images"].float(), batch["boxes"], batch["labels"], "val")

    def configure_optimizers(self):
        d = self.dense
        optimizer = make_optimizer(self.optimizer, [{"params": list(self.net.parameters())}], d.lr, d.weight_decay)
        shape, total = phase_schedule("one_cycle"), max(1, d.epochs * self.steps_per_epoch)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: shape(step / total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
