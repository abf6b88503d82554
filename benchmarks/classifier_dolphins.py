"""Benchmark: dolphins vs seahorses on this CPU, as `dvc exp run -S data=dolphins_seahorses` trains it,
over several seeds; then from scratch, and the frozen phase's feature cache.

    python benchmarks/classifier_dolphins.py [--root ../shared/datasets/dolphins-and-seahorses]
                                             [--seeds 42,43,44] [--scratch] [hydra overrides ...]

Prepares the dataset once with the project's seed (its split: 70/20/10 train/val/test) and the
augmentation pipelines of conf/ (the classifier's `input_size: auto` chooses from the photos), then
trains and evaluates the default classifier (tf_efficientnet_lite0 with ImageNet weights, frozen
then fine-tuned) once per training seed, with any overrides given. Prints, per seed and as mean and
spread, the validation and test accuracy and the training seconds; then the epoch time of the
frozen phase with and without the feature cache, as a ratio. With --scratch, also the small
AlexNet-style network trained from scratch (the original workflow: 87.5 % from scratch, 100 %
fine-tuned). Runs go to MLflow (experiment cv-pipeline-benchmarks).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from lightning.pytorch.callbacks import Callback
from seeds import print_table, spread

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


def run(name, overrides, work: Path, callbacks=()) -> dict:
    """Train and evaluate one setting on the prepared data: accuracies, training seconds, the result."""
    cfg = compose(overrides)
    start = time.perf_counter()
    result = train_classifier(cfg, work / "prepared/manifest.json", work / "augment", work / name, callbacks=callbacks)
    seconds = time.perf_counter() - start
    metrics = evaluate_classifier(cfg, work / "prepared/manifest.json", work / "augment", work / name,
                                  work / f"{name}.json", work / f"{name}_reports", work / f"{name}_confusion")
    return {"val": metrics["val"]["accuracy"], "test": metrics["test"]["accuracy"], "seconds": seconds,
            "counts": (metrics["val"]["count"], metrics["test"]["count"]), "result": result}


def over_seeds(label: str, overrides: list[str], seeds: list[int], work: Path, name: str) -> list[str]:
    runs = []
    for seed in seeds:
        r = run(f"{name}_{seed}", [*overrides, f"seed={seed}"], work)
        print(f"{label}, seed {seed}: accuracy val {r['val']:.4f}, test {r['test']:.4f} "
              f"({r['counts'][0]} / {r['counts'][1]} images); training {r['seconds']:.0f} s", flush=True)
        runs.append(r)
    return [label, spread([r["val"] for r in runs], 4), spread([r["test"] for r in runs], 4),
            spread([r["seconds"] for r in runs], 0) + " s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="../shared/datasets/dolphins-and-seahorses")
    parser.add_argument("--seeds", default="42,43,44", help="training seeds (the split keeps the project's)")
    parser.add_argument("--scratch", action="store_true", help="also the small AlexNet-style net from scratch")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    common = ["data=dolphins_seahorses", f"data.root={Path(args.root).resolve()}",
              "logger.experiment=cv-pipeline-benchmarks", "logger.progress_bar=false", *args.overrides]
    work = Path(tempfile.mkdtemp(prefix="dolphins-"))
    cfg = compose(common)
    prepare(cfg.data, int(cfg.seed), work / "prepared", work / "rp", work / "prepare.json")
    summary = run_augment(cfg.augment, work / "prepared/manifest.json", work / "augment", work / "ra", int(cfg.seed))
    side = summary["classifier"]["input_size"][0]
    print(f"input {side} px ({summary['classifier']['sized_by']})")

    rows = [over_seeds(f"lite0 ImageNet, the defaults, {side} px", common, seeds, work, "default")]
    if args.scratch:
        scratch = [*common, "model/classifier=small_alexnet", "train.classifier.epochs=40", "train.classifier.lr=0.002"]
        rows.append(over_seeds(f"small AlexNet-style from scratch, 40 epochs, {side} px", scratch, seeds, work,
                               "scratch"))
    print_table([f"setting ({len(seeds)} seeds: mean ± sd)", "val accuracy", "test accuracy", "training"], rows)

    # the frozen phase with and without the cache: without, every epoch runs the backbone over the images
    frozen = [*common, "train.classifier.epochs=3", "train.classifier.freeze_epochs=3"]
    cached, plain = EpochTimer(), EpochTimer()
    encode = run("frozen_cache", frozen, work, [cached])["result"]["feature_cache_seconds"]
    run("frozen_no_cache", [*frozen, "train.classifier.cache_features=false"], work, [plain])
    with_cache, without = sum(cached.times), sum(plain.times)
    print(f"\n3 frozen epochs (train + val): {without:.2f} s without the feature cache, {with_cache:.2f} s with it "
          f"({without / with_cache:.1f}x); with its one-time encoding ({encode:.2f} s, before the first epoch): "
          f"{without / (with_cache + encode):.1f}x")
    print(f"work folder: {work}")


if __name__ == "__main__":
    main()
