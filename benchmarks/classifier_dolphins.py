"""Benchmark: dolphins vs seahorses, from scratch and by transfer learning, on this CPU.

    python benchmarks/classifier_dolphins.py [--root ../shared/datasets/dolphins-and-seahorses]

Prepares the dataset and its pipelines in a temporary folder, then trains (a) the small
AlexNet-style network from scratch and (b) tf_efficientnet_lite0 with ImageNet weights, frozen
(head on cached features) then fine-tuned with discriminative learning rates. Prints the
validation accuracy and wall time of each (the original dolphins-vs-seahorses workflow reported
87.5 % and 100 %), and the epoch time of the frozen phase with and without the feature cache,
as a ratio. Runs go to MLflow (experiment cv-pipeline-benchmarks).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback

import pipeline  # noqa: F401
from pipeline.augment.stage import run_augment
from pipeline.classify.evaluate import evaluate_classifier
from pipeline.classify.train import train_classifier
from pipeline.config import compose
from pipeline.data.prepare import prepare


class EpochTimer(Callback):
    """Seconds from one epoch's end to the next (data loading, caching, training and validation)."""

    def __init__(self):
        self.times, self.start = [], 0.0

    def on_train_start(self, trainer, module):
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        now = time.perf_counter()
        self.times.append(now - self.start)
        self.start = now


def run(name, overrides, work: Path, callbacks=()):
    cfg = compose(overrides)
    start = time.perf_counter()
    result = train_classifier(cfg, work / "prepared/manifest.json", work / "augment", work / name, callbacks=callbacks)
    metrics = evaluate_classifier(cfg, work / "prepared/manifest.json", work / "augment", work / name,
                                  work / f"{name}.json", work / f"{name}_reports", work / f"{name}_confusion")
    return time.perf_counter() - start, metrics["val"]["accuracy"], metrics["val"]["count"], result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="../shared/datasets/dolphins-and-seahorses")
    parser.add_argument("--size", type=int, default=160, help="input side in pixels")
    args = parser.parse_args()
    common = ["data=dolphins_seahorses", f"data.root={Path(args.root).resolve()}",
              f"augment.classifier.input_size=[{args.size},{args.size}]", "logger.experiment=cv-pipeline-benchmarks",
              "logger.progress_bar=false", "train.classifier.batch_size=16"]
    work = Path(tempfile.mkdtemp(prefix="dolphins-"))
    cfg = compose(common)
    prepare(cfg.data, int(cfg.seed), work / "prepared", work / "rp", work / "prepare.json")
    run_augment(cfg.augment, work / "prepared/manifest.json", work / "augment", work / "ra", int(cfg.seed))

    scratch = common + ["model/classifier=small_alexnet", "train.classifier.epochs=40", "train.classifier.lr=0.002"]
    transfer = common + ["model/classifier=lite0", "train.classifier.epochs=8", "train.classifier.freeze_epochs=3",
                         "train.classifier.lr=0.002", "train.classifier.lr_mult=[0.01,0.1,1.0]"]
    frozen_cached, frozen_plain = EpochTimer(), EpochTimer()
    results = {"(a) small AlexNet-style, from scratch": run("scratch", scratch, work),
               "(b) lite0 ImageNet, frozen then fine-tuned": run("transfer", transfer, work, [frozen_cached])}
    for label, (seconds, accuracy, count, _) in results.items():
        print(f"{label}: validation accuracy {accuracy:.4f} ({count} images), wall time {seconds:.0f} s")
    # the frozen phase once more without the cache: every epoch runs the backbone over the images
    no_cache = common + ["model/classifier=lite0", "train.classifier.epochs=3", "train.classifier.freeze_epochs=3",
                         "train.classifier.cache_features=false"]
    run("frozen_no_cache", no_cache, work, [frozen_plain])
    encode = results["(b) lite0 ImageNet, frozen then fine-tuned"][3]["feature_cache_seconds"]
    cached, plain = sum(frozen_cached.times[:3]) / 3, sum(frozen_plain.times) / len(frozen_plain.times)
    print(f"frozen-phase epoch (train + val): {plain:.2f} s without the cache, {cached:.3f} s with it, "
          f"ratio {plain / cached:.0f}x; with the one-time encoding ({encode:.2f} s) over the 3 frozen epochs: "
          f"{3 * plain / (3 * cached + encode):.1f}x")
    print(f"work folder: {work}")


if __name__ == "__main__":
    main()
