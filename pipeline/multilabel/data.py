"""The multi-label view of a dataset: each whole image with the set of classes it holds (as a
multi-label CSV lists them, or those of its boxes for detection data), as a 0/1 vector per image."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.classify.data import ClassificationData, Item
from pipeline.data.manifest import Manifest

PIPELINES = "multilabel"  # the `augment` section of this view (whole images, not patches)


def label_sets(manifest: Manifest, split: str) -> list[tuple[str, set[int]]]:
    """(sample id, class ids present) of each sample of ``split``."""
    if manifest.task == "multilabel":
        return [(s.id, set(s.labels)) for s in manifest.split(split)]
    if manifest.task != "detection":
        raise ValueError(f"multilabel: {manifest.task} data has one class per image; multi-label training needs "
                         "images with several classes (a multi-label CSV, or detection data: the classes of each "
                         "image's boxes)")
    return [(s.id, {int(c) for c in s.box_labels}) for s in manifest.split(split)]


def multi_hot(present: set[int], num_classes: int) -> np.ndarray:
    target = np.zeros(num_classes, np.float32)
    target[sorted(present)] = 1.0
    return target


class MultiLabelData(ClassificationData):
    """Whole images through the `augment.multilabel` pipelines, labelled with a 0/1 vector."""

    def __init__(self, manifest_path: str | Path, pipelines_dir: str | Path, batch_size: int, num_workers,
                 seed: int, image_cache_mb: float = 0):
        super().__init__(manifest_path, pipelines_dir, batch_size, num_workers, seed, 0, 0, 0.0, PIPELINES,
                         image_cache_mb)

    def make_items(self, split: str) -> tuple[list[Item], list[str]]:
        by_id = {s.id: s for s in self.manifest.split(split)}
        k = len(self.manifest.classes)
        items = [Item(self.manifest.path_of(by_id[sid]), multi_hot(present, k), None, sid)
                 for sid, present in label_sets(self.manifest, split)]
        return items, list(self.manifest.classes)

    def label_shape(self) -> tuple[int, ...]:
        return (len(self.classes),)  # a 0/1 vector per image

    def class_counts(self) -> np.ndarray:
        """Images holding each class in the training split."""
        return np.sum([item.label for item in self.items["train"]], axis=0)
