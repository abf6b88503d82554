"""Benchmark: augmentation and DataLoader throughput against one training step of the model.

    python benchmarks/augment_throughput.py            # after `dvc repro` (needs data/prepared, data/augment)

For each task (detector at its input size, classifier on patches, multi-label on whole images;
the patch settings from params.yaml) it prints, measured in this run:
  - augmentation alone (one process, images already decoded), images/s;
  - the DataLoader (decode + augment + collate in worker processes), images/s;
  - one training step (forward, backward, optimizer step) of the default backbone, images/s;
  - loader / step: how many times faster batches arrive than the model consumes them (>= 3 wanted).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

import timm
import torch
from torch.utils.data import DataLoader

import pipeline as _offline_defaults  # noqa: F401  (offline environment defaults)
from pipeline.augment.apply import AugmentedDataset, EpochSampler, augment, detection_collate
from pipeline.augment.build import load_pipeline
from pipeline.augment.stage import detection_example
from pipeline.classify.data import data_from_config, load_item
from pipeline.config import load_params
from pipeline.data.manifest import Manifest
from pipeline.multilabel.data import MultiLabelData


def rate(count: int, seconds: float) -> float:
    return count / max(seconds, 1e-9)


def loader_items(task: str, manifest: Manifest, args, cfg) -> tuple[int, Callable, int]:
    """(training items, a function loading item i, classes) of a task, as its training builds them."""
    if task == "detector":
        samples = manifest.split("train")
        return len(samples), lambda i: detection_example(manifest, samples[i]), len(manifest.classes)
    if task == "classifier":
        data = data_from_config(args.manifest, args.pipelines, cfg.train.classifier, cfg.seed)
    else:
        data = MultiLabelData(args.manifest, args.pipelines, args.batch, 0, cfg.seed)
    items = data.items["train"]
    return len(items), lambda i: load_item(items[i]), len(data.classes)


def time_augmentation(pipeline, examples, repeats: int) -> float:
    start = time.perf_counter()
    for r in range(repeats):
        for i, example in enumerate(examples):
            augment(pipeline, example, seed=r * len(examples) + i)
    return rate(repeats * len(examples), time.perf_counter() - start)


def time_loader(size, load, pipeline, batch: int, workers: int, epochs: int) -> float:
    dataset = AugmentedDataset(size, load, pipeline, seed=0)
    sampler = EpochSampler(size, seed=0)
    loader = DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=workers,
                        collate_fn=detection_collate, persistent_workers=workers > 0)
    next(iter(loader))  # start the workers outside the clock
    count, start = 0, time.perf_counter()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for b in loader:
            count += len(b["images"])
    return rate(count, time.perf_counter() - start)


def time_train_step(model_name: str, num_classes: int, size: tuple[int, int], batch: int, steps: int) -> float:
    model = timm.create_model(model_name, pretrained=False, num_classes=num_classes).train()
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.rand(batch, 3, size[1], size[0]).to(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch,))

    def step():
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return rate(steps * batch, time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", default="data/prepared/manifest.json")
    parser.add_argument("--pipelines", default="data/augment")
    parser.add_argument("--params", default="params.yaml", help="the patch settings of train.classifier")
    parser.add_argument("--model", default="tf_efficientnet_lite0", help="timm name of the default backbone")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    torch.manual_seed(0)
    manifest = Manifest.read(args.manifest)
    print(f"torch threads {torch.get_num_threads()}, loader workers {args.workers}, batch {args.batch}")
    cfg = load_params(args.params)
    tasks = [task for task in ("detector", "classifier", "multilabel")
             if task in cfg.data.models and Path(f"{args.pipelines}/{task}_train.json").is_file()]
    for task in tasks:
        train = load_pipeline(f"{args.pipelines}/{task}_train.json")
        size, load, classes = loader_items(task, manifest, args, cfg)
        decoded = [load(i) for i in range(min(size, 64))]
        out_size = augment(train, decoded[0], seed=0).image.shape[1::-1]
        aug = time_augmentation(train, decoded, repeats=3)
        loader = time_loader(size, load, train, args.batch, args.workers, args.epochs)
        step = time_train_step(args.model, classes, tuple(out_size), args.batch, args.steps)
        print(f"{task} at {out_size[0]}x{out_size[1]}: augmentation {aug:.0f} img/s, DataLoader {loader:.0f} img/s, "
              f"train step ({args.model}) {step:.1f} img/s; loader/step = {loader / step:.1f}")


if __name__ == "__main__":
    main()
