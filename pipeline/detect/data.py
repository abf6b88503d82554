"""Detection images for training dense models (the FCN's fine-tuning, the SSD detector).

Each image comes through the saved detector pipelines (`augment` stage) with its boxes, and a
batch keeps each image's own boxes and labels (no padding the loss must strip).

With tiles (``augment.detector.resize: tile``) an image is not one item: training draws one crop
per object in it (at least one per image) each epoch, and validation scores the fixed grid of
overlapping tiles that sliced inference cuts, each with the boxes that stay visible enough in it
(the ``boxes`` policy). The evaluation stage scores whole images by sliced inference instead.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Mapping

import albumentations as A
import lightning as L
from torch.utils.data import DataLoader

from pipeline.augment.apply import AugmentedDataset, EpochSampler, Example, augment, detection_collate
from pipeline.augment.build import bbox_params, load_pipeline, load_tiles
from pipeline.augment.stage import detection_example
from pipeline.data.manifest import Manifest
from pipeline.data.split import require_training_splits
from pipeline.devices import loader_options, training_device
from pipeline.hardware import loader_workers
from pipeline.io.image_cache import DecodedImages
from pipeline.predict.tiles import windows

WHOLE_IMAGES_CACHED = 64  # decoded large images kept for the tiles cut from them


def tile_example(example: Example, window, policy: Mapping, fill: int) -> Example:
    """The ``window`` (x0, y0, x1, y1) of ``example``, padded with ``fill`` where it passes the image,
    with the boxes that stay visible enough in it (the ``boxes`` policy, clipped to the tile)."""
    crop = A.Crop(*(int(v) for v in window), pad_if_needed=True, border_mode=0, fill=fill, pad_position="top_left")
    return augment(A.Compose([crop], bbox_params=bbox_params({**policy, "clip": True})), example)


class DetectionData(L.LightningDataModule):
    def __init__(self, manifest_path: str | Path, pipelines_dir: str | Path, batch_size: int = 16,
                 num_workers=0, seed: int = 0, image_cache_mb: float = 0):
        """``num_workers``: loader processes, or auto (pipeline.hardware); ``image_cache_mb``: decoded
        images kept for later epochs (pipeline.io.image_cache), 0: none."""
        super().__init__()
        self.manifest = Manifest.read(manifest_path)
        if self.manifest.task != "detection":
            raise ValueError(f"{manifest_path}: {self.manifest.task} data has no boxes; dense models need "
                             "detection data (data=synthetic, voc, coco, kitti, yolo or csv)")
        self.classes = list(self.manifest.classes)
        self.samples = {split: self.manifest.split(split) for split in ("train", "val", "test")}
        self.pipelines = {True: load_pipeline(Path(pipelines_dir) / "detector_train.json"),
                          False: load_pipeline(Path(pipelines_dir) / "detector_eval.json")}
        self.tiles = load_tiles(pipelines_dir, "detector")  # None: whole images
        self.batch_size, self.num_workers, self.seed = batch_size, loader_workers(num_workers), seed
        self.images = DecodedImages(image_cache_mb, self.num_workers)
        self.where = manifest_path
        self.loaders: dict[str, DataLoader] = {}  # the training's, made once: their workers persist

    def require_training_splits(self) -> None:
        require_training_splits(self.samples, self.where)

    def example(self, split: str, index: int) -> Example:
        """A whole image of ``split`` with its boxes, through the eval pipeline (evaluation)."""
        return augment(self.pipelines[False], detection_example(self.manifest, self.samples[split][index], self.images))

    def dataset(self, split: str, augment: bool) -> AugmentedDataset:
        samples = self.samples[split]
        if self.tiles is None:
            return AugmentedDataset(len(samples), lambda i: detection_example(self.manifest, samples[i], self.images),
                                    self.pipelines[augment], self.seed)
        whole = functools.lru_cache(maxsize=WHOLE_IMAGES_CACHED)(
            lambda i: detection_example(self.manifest, samples[i], self.images))
        if augment:  # one random crop per object (A.AtLeastOneBBoxRandomCrop picks which), background too
            draws = [i for i, s in enumerate(samples) for _ in range(max(1, len(s.boxes)))]
            return AugmentedDataset(len(draws), lambda k: whole(draws[k]), self.pipelines[True], self.seed)
        return self.validation_tiles(samples, whole)

    def validation_tiles(self, samples, whole) -> AugmentedDataset:
        """The tiles sliced inference cuts from ``samples`` that hold an object, and as many of the
        empty ones (evenly spread), each with its clipped boxes: validation during training. Every
        tile of a large image would cost several times the training epoch, most of them empty; the
        evaluation stage scores every tile of the whole images."""
        size, overlap = tuple(self.tiles["input_size"]), float(self.tiles["overlap"])
        cuts = [(i, window) for i, s in enumerate(samples) for window in windows(s.width, s.height, size, overlap)]
        def tile(cut_) -> Example:
            return tile_example(whole(cut_[0]), cut_[1], self.tiles["boxes"], int(self.tiles["pad_fill"]))

        held = [len(tile(c).boxes) > 0 for c in cuts]
        full = [c for c, h in zip(cuts, held) if h]
        empty = [c for c, h in zip(cuts, held) if not h]
        step = max(1, len(empty) // max(1, len(full)))
        chosen = sorted(full + empty[::step][:len(full)], key=lambda c: (c[0], c[1][1], c[1][0]))
        return AugmentedDataset(len(chosen), lambda k: tile(chosen[k]), self.pipelines[False], self.seed)

    def input_size(self) -> tuple[int, int]:
        """(width, height) of the images the eval pipeline makes (the `augment` stage's input size;
        the tile size with tiles)."""
        if self.tiles:
            return tuple(int(v) for v in self.tiles["input_size"])
        probe = self.dataset("val", augment=False)[0].image
        return int(probe.shape[1]), int(probe.shape[0])

    def lone_last_image(self, split: str) -> bool:
        """Whether the last training batch would hold one image: batch norm cannot train on it (the
        1x1 levels have one value per channel), so that image waits for the next epoch's shuffle."""
        count = len(self.dataset(split, augment=True)) if self.tiles else len(self.samples[split])
        return count % self.batch_size == 1 and count > 1

    def loader(self, split: str, augment: bool, shuffle: bool, persistent: bool = False) -> DataLoader:
        dataset = self.dataset(split, augment)
        return DataLoader(dataset, batch_size=self.batch_size, sampler=EpochSampler(len(dataset), shuffle, self.seed),
                          collate_fn=detection_collate, drop_last=augment and self.lone_last_image(split),
                          **loader_options(self.num_workers, training_device(self), persistent))

    def training_loader(self, split: str) -> DataLoader:
        """The training's loader of ``split``, made once: Lightning asks for it every epoch, and its
        worker processes live from epoch to epoch."""
        if split not in self.loaders:
            train = split == "train"
            self.loaders[split] = self.loader(split, augment=train, shuffle=train, persistent=True)
        return self.loaders[split]

    def steps_per_epoch(self) -> int:
        count = len(self.dataset("train", augment=True)) if self.tiles else len(self.samples["train"])
        return count // self.batch_size if self.lone_last_image("train") else -(-count // self.batch_size)

    def train_dataloader(self) -> DataLoader:
        return self.training_loader("train")

    def val_dataloader(self) -> DataLoader:
        return self.training_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", augment=False, shuffle=False)
