"""Apply a saved pipeline to one sample, reproducibly, in any DataLoader worker.

albumentations draws from a generator owned by the Compose; in DataLoader workers every
worker starts from a copy of the same state, and it is not reseeded per epoch. Hand-written
here because neither albumentations nor torch provides it: :class:`EpochSampler` yields
``(epoch, index)`` keys and :class:`AugmentedDataset` reseeds the pipeline from
``(seed, epoch, index)`` for every sample. A sample's augmentation therefore depends only on
the seed, the epoch and the sample, not on the number of workers, which worker handles it, or
whether training was resumed half-way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import albumentations as A
import numpy as np
import torch
from albumentations.core.bbox_utils import convert_bboxes_from_albumentations, convert_bboxes_to_albumentations
from torch.utils.data import Dataset, Sampler


@dataclass
class Example:
    """An image with its boxes (absolute xyxy pixels) and their labels; boxes may be empty."""

    image: np.ndarray  # H x W x 3 uint8 RGB
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    label: int | None = None  # image-level class (classification)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


def box_format(pipeline: A.Compose) -> str | None:
    processor = pipeline.processors.get("bboxes")
    return processor.params.format if processor is not None else None


def convert_boxes(boxes: np.ndarray, source: str, target: str, image: np.ndarray) -> np.ndarray:
    """Between albumentations' box formats (pascal_voc, coco, yolo, albumentations), via its own converters."""
    if source == target or len(boxes) == 0:
        return boxes
    shape = {"height": image.shape[0], "width": image.shape[1]}
    if source != "albumentations":
        boxes = convert_bboxes_to_albumentations(boxes, source, shape)
    return boxes if target == "albumentations" else convert_bboxes_from_albumentations(boxes, target, shape)


def augment(pipeline: A.Compose, example: Example, seed: int | None = None) -> Example:
    """Run ``pipeline`` on ``example``: boxes follow the pixels, dropped boxes take their labels along."""
    if seed is not None:
        pipeline.set_random_seed(seed)
    fmt = box_format(pipeline)
    if fmt is None:
        return Example(pipeline(image=example.image)["image"], label=example.label)
    boxes = np.asarray(example.boxes, np.float64).reshape(-1, 4)
    boxes = convert_boxes(boxes, "pascal_voc", fmt, example.image)
    out = pipeline(image=example.image, bboxes=boxes, labels=np.asarray(example.labels, np.int64))
    image = out["image"]
    boxes = convert_boxes(np.asarray(out["bboxes"], np.float64).reshape(-1, 4), fmt, "pascal_voc", image)
    # albumentations returns labels as floats (ENVIRONMENT.md); class ids are integers.
    labels = np.rint(np.asarray(out["labels"], np.float64)).astype(np.int64).reshape(-1)
    return Example(image, boxes.astype(np.float32), labels, example.label)


class EpochSampler(Sampler):
    """Indices of a dataset, shuffled per epoch from ``seed``, as ``(epoch, index)`` keys.

    Lightning calls ``set_epoch`` at the start of every epoch (as for DistributedSampler).
    """

    def __init__(self, size: int, shuffle: bool = True, seed: int = 0):
        self.size, self.shuffle, self.seed, self.epoch = size, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = range(self.size)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size).tolist()
        return iter([(self.epoch, i) for i in order])


class AugmentedDataset(Dataset):
    """``load(i)`` gives the i-th :class:`Example`; it comes back through ``pipeline``, seeded.

    Keys are ints (epoch 0) or ``(epoch, index)`` from :class:`EpochSampler`.
    """

    def __init__(self, size: int, load: Callable[[int], Example], pipeline: A.Compose, seed: int = 0,
                 to_item: Callable[[Example, int], object] | None = None):
        self.size, self.load, self.pipeline, self.seed = size, load, pipeline, seed
        self.to_item = to_item

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: int | Sequence[int]):
        epoch, index = (0, int(key)) if np.ndim(key) == 0 else (int(key[0]), int(key[1]))
        example = augment(self.pipeline, self.load(index), sample_seed(self.seed, epoch, index))
        return self.to_item(example, index) if self.to_item else example


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> 3 x H x W uint8 tensor (models scale and normalise on their side)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def detection_collate(batch: Sequence[Example]) -> dict:
    """Stack images; keep each image's boxes and labels as its own tensor (no padding)."""
    return {
        "images": torch.stack([image_tensor(e.image) for e in batch]),
        "boxes": [torch.from_numpy(e.boxes) for e in batch],
        "labels": [torch.from_numpy(e.labels) for e in batch],
    }

