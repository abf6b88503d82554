"""Classification data from the canonical manifest, through the saved augmentation pipelines.

Classification manifests give whole images with their label. Detection manifests give the
patch view (pipeline/data/patches.py): one crop per box plus background crops, with the class
list extended by ``background``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pipeline.augment.apply import AugmentedDataset, EpochSampler, Example, image_tensor
from pipeline.augment.build import load_pipeline
from pipeline.data.manifest import Manifest
from pipeline.data.patches import BACKGROUND, crop, patch_windows
from pipeline.data.split import require_training_splits
from pipeline.io.images import read_image


@dataclass(frozen=True)
class Item:
    file: Path
    label: int
    window: tuple[float, float, float, float] | None = None  # a patch of the image, or the whole image
    name: str = ""


def classification_items(manifest: Manifest, split: str, seed: int, background_per_image: int, context: float,
                         fragments_per_object: int) -> tuple[list[Item], list[str]]:
    """Items of one split, and the class names (with ``background`` for the patch view)."""
    samples = manifest.split(split)
    if manifest.task == "classification":
        items = [Item(manifest.path_of(s), int(s.label), None, s.id) for s in samples]
        return items, list(manifest.classes)
    patches = patch_windows(samples, len(manifest.classes), context, background_per_image, seed=seed,
                            fragments_per_object=fragments_per_object)
    items = [Item(manifest.path_of(samples[p.sample]), p.label, p.box, f"{samples[p.sample].id}#{k}")
             for k, p in enumerate(patches)]
    return items, list(manifest.classes) + [BACKGROUND]


def load_item(item: Item) -> Example:
    pixels = read_image(item.file).pixels
    return Example(crop(pixels, item.window) if item.window is not None else pixels, label=item.label)


def to_batch_item(example: Example, index: int) -> dict:
    return {"images": image_tensor(example.image), "labels": example.label, "index": index}


class FeatureDataset(Dataset):
    """Cached backbone features of a frozen backbone, with their labels."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor):
        self.features, self.labels = features, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key) -> dict:
        i = int(key[1]) if isinstance(key, (tuple, list)) else int(key)  # (epoch, index) from EpochSampler
        return {"features": self.features[i], "labels": self.labels[i], "index": i}


class ClassificationData(L.LightningDataModule):
    def __init__(self, manifest_path: str | Path, pipelines_dir: str | Path, batch_size: int, num_workers: int,
                 seed: int, background_per_image: int, fragments_per_object: int, patch_context: float,
                 pipelines: str = "classifier"):
        """``pipelines``: the `augment` section whose saved pipelines (<pipelines>_{train,eval}.json) apply."""
        super().__init__()
        self.manifest = Manifest.read(manifest_path)
        self.train_pipeline = load_pipeline(Path(pipelines_dir) / f"{pipelines}_train.json")
        self.eval_pipeline = load_pipeline(Path(pipelines_dir) / f"{pipelines}_eval.json")
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.patches = {"background_per_image": background_per_image, "context": patch_context,
                        "fragments_per_object": fragments_per_object}
        self.items = {}
        for split in ("train", "val", "test"):
            self.items[split], self.classes = self.make_items(split)
        self.where = manifest_path
        self.cached: dict[str, FeatureDataset] = {}
        self.cache_until_epoch = 0  # epochs with a frozen backbone: train the head on cached features
        self.cache_seconds = 0.0  # time spent encoding the cache (reported by benchmarks)

    def require_training_splits(self) -> None:
        require_training_splits(self.items, self.where)

    def make_items(self, split: str) -> tuple[list[Item], list[str]]:
        """The items of ``split`` and the class names (other views of the data override this)."""
        return classification_items(self.manifest, split, self.seed, **self.patches)

    def input_size(self) -> tuple[int, int]:
        probe = self.dataset("val", augment=False)[0]["images"]
        return int(probe.shape[2]), int(probe.shape[1])

    def class_counts(self) -> np.ndarray:
        return np.bincount([i.label for i in self.items["train"]], minlength=len(self.classes))

    def dataset(self, split: str, augment: bool) -> AugmentedDataset:
        items = self.items[split]
        pipeline = self.train_pipeline if augment else self.eval_pipeline
        return AugmentedDataset(len(items), lambda i: load_item(items[i]), pipeline, self.seed, to_batch_item)

    def loader(self, dataset, shuffle: bool) -> DataLoader:
        sampler = EpochSampler(len(dataset), shuffle=shuffle, seed=self.seed)
        workers = 0 if isinstance(dataset, FeatureDataset) else self.num_workers
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler, num_workers=workers,
                          persistent_workers=False)

    def use_cache(self) -> bool:
        if self.trainer is None or self.trainer.current_epoch >= self.cache_until_epoch:
            return False
        if not self.cached:
            net = self.trainer.lightning_module.net
            net.features.eval()  # frozen: batch-norm statistics as pretrained
            self.cache_features(net.forward_features)
        return True

    def train_dataloader(self) -> DataLoader:
        if self.use_cache():
            return self.loader(self.cached["train"], shuffle=True)
        return self.loader(self.dataset("train", augment=True), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        if self.use_cache():
            return self.loader(self.cached["val"], shuffle=False)
        return self.loader(self.dataset("val", augment=False), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader(self.dataset("test", augment=False), shuffle=False)

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.items["train"]) / self.batch_size)

    @torch.no_grad()
    def cache_features(self, encode) -> None:
        """Encode train and val once with the eval pipeline (no augmentation) for a frozen backbone."""
        start = time.perf_counter()
        for split in ("train", "val"):
            if split in self.cached:
                continue
            feats, labels = [], []
            for batch in self.loader(self.dataset(split, augment=False), shuffle=False):
                feats.append(encode(batch["images"]))
                labels.append(batch["labels"])
            self.cached[split] = FeatureDataset(torch.cat(feats), torch.cat(labels))
        self.cache_seconds += time.perf_counter() - start


def data_from_config(manifest: str | Path, pipelines_dir: str | Path, tc, seed: int,
                     num_workers: int | None = None) -> ClassificationData:
    """The DataModule of a `train.classifier` config section."""
    return ClassificationData(manifest, pipelines_dir, int(tc.batch_size),
                              int(tc.num_workers) if num_workers is None else num_workers, seed,
                              int(tc.background_per_image), int(tc.fragments_per_object), float(tc.patch_context))
