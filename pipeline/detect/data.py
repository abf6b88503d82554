"""Detection images for training dense models (the FCN's fine-tuning, the SSD detector).

Each image comes through the saved detector pipelines (`augment` stage) with its boxes, and a
batch keeps each image's own boxes and labels (no padding the loss must strip).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from pipeline.augment.apply import AugmentedDataset, EpochSampler, detection_collate
from pipeline.augment.build import load_pipeline
from pipeline.augment.stage import detection_example
from pipeline.data.manifest import Manifest
from pipeline.data.split import require_training_splits


class DetectionData(L.LightningDataModule):
    def __init__(self, manifest_path: str | Path, pipelines_dir: str | Path, batch_size: int = 16,
                 num_workers: int = 0, seed: int = 0):
        super().__init__()
        self.manifest = Manifest.read(manifest_path)
        if self.manifest.task != "detection":
            raise ValueError(f"{manifest_path}: {self.manifest.task} data has no boxes; dense models need "
                             "detection data (data=synthetic, voc, coco, kitti, yolo or csv)")
        self.classes = list(self.manifest.classes)
        self.samples = {split: self.manifest.split(split) for split in ("train", "val", "test")}
        self.pipelines = {True: load_pipeline(Path(pipelines_dir) / "detector_train.json"),
                          False: load_pipeline(Path(pipelines_dir) / "detector_eval.json")}
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.where = manifest_path

    def require_training_splits(self) -> None:
        require_training_splits(self.samples, self.where)

    def input_size(self) -> tuple[int, int]:
        """(width, height) of the images the eval pipeline makes (the `augment` stage's input size)."""
        probe = self.dataset("val", augment=False)[0].image
        return int(probe.shape[1]), int(probe.shape[0])

    def dataset(self, split: str, augment: bool) -> AugmentedDataset:
        samples = self.samples[split]
        return AugmentedDataset(len(samples), lambda i: detection_example(self.manifest, samples[i]),
                                self.pipelines[augment], self.seed)

    def lone_last_image(self, split: str) -> bool:
        """Whether the last training batch would hold one image: batch norm cannot train on it (the
        1x1 levels have one value per channel), so that image waits for the next epoch's shuffle."""
        return len(self.samples[split]) % self.batch_size == 1 and len(self.samples[split]) > 1

    def loader(self, split: str, augment: bool, shuffle: bool) -> DataLoader:
        dataset = self.dataset(split, augment)
        return DataLoader(dataset, batch_size=self.batch_size, sampler=EpochSampler(len(dataset), shuffle, self.seed),
                          num_workers=self.num_workers, collate_fn=detection_collate,
                          drop_last=augment and self.lone_last_image(split))

    def steps_per_epoch(self) -> int:
        count = len(self.samples["train"])
        return count // self.batch_size if self.lone_last_image("train") else -(-count // self.batch_size)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", augment=True, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", augment=False, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", augment=False, shuffle=False)
