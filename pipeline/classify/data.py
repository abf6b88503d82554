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
from pipeline.classify.preview import sees_patches
from pipeline.classify.settings import ClassifierTrain
from pipeline.data.manifest import Manifest
from pipeline.data.patches import BACKGROUND, crop, patch_windows
from pipeline.data.split import require_training_splits
from pipeline.devices import loader_options, module_device, to_device, training_device
from pipeline.hardware import loader_workers
from pipeline.io.image_cache import DecodedImages
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
    if not sees_patches(manifest):
        items = [Item(manifest.path_of(s), int(s.label), None, s.id) for s in samples]
        return items, list(manifest.classes)
    patches = patch_windows(samples, len(manifest.classes), context, background_per_image, seed=seed,
                            fragments_per_object=fragments_per_object)
    items = [Item(manifest.path_of(samples[p.sample]), p.label, p.box, f"{samples[p.sample].id}#{k}")
             for k, p in enumerate(patches)]
    return items, list(manifest.classes) + [BACKGROUND]


def load_item(item: Item, images: DecodedImages | None = None) -> Example:
    """The item's pixels (its patch, or the whole image); decoded once with ``images``."""
    pixels = images.pixels(item.file) if images else read_image(item.file).pixels
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
    def __init__(self, manifest_path: str | Path, pipelines_dir: str | Path, batch_size: int, num_workers,
                 seed: int, background_per_image: int, fragments_per_object: int, patch_context: float,
                 pipelines: str = "classifier", image_cache_mb: float = 0):
        """``pipelines``: the `augment` section whose saved pipelines (<pipelines>_{train,eval}.json) apply;
        ``num_workers``: loader processes, or auto (pipeline.hardware); ``image_cache_mb``: decoded
        images kept for later epochs (pipeline.io.image_cache), 0: none."""
        super().__init__()
        self.manifest = Manifest.read(manifest_path)
        self.train_pipeline = load_pipeline(Path(pipelines_dir) / f"{pipelines}_train.json")
        self.eval_pipeline = load_pipeline(Path(pipelines_dir) / f"{pipelines}_eval.json")
        self.batch_size, self.num_workers, self.seed = batch_size, loader_workers(num_workers), seed
        self.images = DecodedImages(image_cache_mb, self.num_workers)
        self.patches = {"background_per_image": background_per_image, "context": patch_context,
                        "fragments_per_object": fragments_per_object}
        self.items = {}
        for split in ("train", "val", "test"):
            self.items[split], self.classes = self.make_items(split)
        self.where = manifest_path
        self.cached: dict[str, FeatureDataset] = {}
        self.cache_until_epoch = 0  # epochs with a frozen backbone: train the head on cached features
        self.cache_seconds = 0.0  # time spent encoding the cache (reported by benchmarks)
        self.loaders: dict[tuple[str, bool], DataLoader] = {}  # one per split and phase: its workers persist

    def require_training_splits(self) -> None:
        require_training_splits(self.items, self.where)

    def make_items(self, split: str) -> tuple[list[Item], list[str]]:
        """The items of ``split`` and the class names (other views of the data override this)."""
        return classification_items(self.manifest, split, self.seed, **self.patches)

    def input_size(self) -> tuple[int, int]:
        probe = self.dataset("val", augment=False)[0]["images"]
        return int(probe.shape[2]), int(probe.shape[1])

    def label_shape(self) -> tuple[int, ...]:
        return ()  # one class id per item

    def class_counts(self) -> np.ndarray:
        return np.bincount([i.label for i in self.items["train"]], minlength=len(self.classes))

    def dataset(self, split: str, augment: bool) -> AugmentedDataset:
        items = self.items[split]
        pipeline = self.train_pipeline if augment else self.eval_pipeline
        return AugmentedDataset(len(items), lambda i: load_item(items[i], self.images), pipeline, self.seed,
                                to_batch_item)

    def loader(self, dataset, shuffle: bool, persistent: bool = False) -> DataLoader:
        sampler = EpochSampler(len(dataset), shuffle=shuffle, seed=self.seed)
        if isinstance(dataset, FeatureDataset):  # tensors already in memory (on the training's device)
            return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler)
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler,
                          **loader_options(self.num_workers, training_device(self), persistent))

    def phase_loader(self, split: str) -> DataLoader:
        """The training's loader of ``split`` in the current phase (cached features or images), made once
        so that its worker processes live from epoch to epoch (Lightning asks for it every epoch)."""
        cached = self.use_cache()
        key = (split, cached)
        if key not in self.loaders:
            dataset = self.cached[split] if cached else self.dataset(split, augment=split == "train")
            self.loaders[key] = self.loader(dataset, shuffle=split == "train", persistent=True)
        return self.loaders[key]

    def use_cache(self) -> bool:
        if self.trainer is None or self.trainer.current_epoch >= self.cache_until_epoch:
            return False
        if not self.cached:
            net = self.trainer.lightning_module.net
            net.features.eval()  # frozen: batch-norm statistics as pretrained
            self.cache_features(net.forward_features, module_device(net))
        return True

    def train_dataloader(self) -> DataLoader:
        return self.phase_loader("train")

    def val_dataloader(self) -> DataLoader:
        return self.phase_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader(self.dataset("test", augment=False), shuffle=False)

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.items["train"]) / self.batch_size)

    @torch.no_grad()
    def cache_features(self, encode, device: torch.device) -> None:
        """Encode train and val once with the eval pipeline (no augmentation) for a frozen backbone
        whose weights are on ``device``; the features stay there, as the head that trains on them."""
        start = time.perf_counter()
        for split in ("train", "val"):
            if split in self.cached:
                continue
            feats, labels = [], []
            for batch in self.loader(self.dataset(split, augment=False), shuffle=False):
                feats.append(encode(to_device(batch["images"], device)))
                labels.append(to_device(batch["labels"], device))
            self.cached[split] = FeatureDataset(torch.cat(feats), torch.cat(labels))
        self.cache_seconds += time.perf_counter() - start


def data_from_config(manifest: str | Path, pipelines_dir: str | Path, tc: ClassifierTrain,
                     seed: int) -> ClassificationData:
    """The DataModule of `train.classifier` settings (or of `train.fcn`'s patch classifier)."""
    return ClassificationData(manifest, pipelines_dir, tc.batch_size, tc.num_workers, seed, tc.background_per_image,
                              tc.fragments_per_object, tc.patch_context, image_cache_mb=tc.image_cache_mb)
