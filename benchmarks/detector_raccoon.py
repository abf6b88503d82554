"""Benchmark: the default detector on a real dataset, on this CPU: raccoon (160 photos, one class)
or BCCD (292 blood smears, three classes, about 13 dense cells per image).

    python benchmarks/detector_raccoon.py [--data raccoon|bccd] [--root PATH] [hydra overrides ...]

Prepares the dataset (its data preset: a 70/20/10 train/val/test split) and its augmentation
pipelines in a temporary folder, trains the detector of conf/ (with any overrides given, e.g.
train.detector.epochs=30) and evaluates it. Prints validation mAP@0.5, mAP@[.5:.95], the AP@0.5
of each class and the wall time of training and of evaluation. The run goes to MLflow
(experiment cv-pipeline-benchmarks).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pipeline  # noqa: F401  (offline environment defaults)
from pipeline.augment.stage import run_augment
from pipeline.config import compose
from pipeline.data.prepare import prepare
from pipeline.detect.evaluate import evaluate_detector
from pipeline.detect.train import train_detector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=["raccoon", "bccd"], default="raccoon", help="the data preset")
    parser.add_argument("--root", help="the dataset folder (default: the preset's, in ../shared/datasets)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/")
    args = parser.parse_args()
    root = [f"data.root={Path(args.root).resolve()}"] if args.root else []
    cfg = compose([f"data={args.data}", *root, "logger.experiment=cv-pipeline-benchmarks", "logger.progress_bar=false",
                   *args.overrides])
    work = Path(tempfile.mkdtemp(prefix=f"{args.data}-"))
    start = time.perf_counter()
    prepare(cfg.data, int(cfg.seed), work / "prepared", work / "prepare_reports", work / "prepare.json")
    run_augment(cfg.augment, work / "prepared/manifest.json", work / "augment", work / "augment_reports", int(cfg.seed))
    prepared = time.perf_counter()
    result = train_detector(cfg, work / "prepared/manifest.json", work / "augment", work / "detector")
    trained = time.perf_counter()
    metrics = evaluate_detector(cfg, work / "prepared/manifest.json", work / "augment", work / "detector",
                                work / "detector.json", work / "reports", work / "pr")
    evaluated = time.perf_counter()
    val = metrics["val"]
    print(f"{args.data}: {val['images']} validation images, {val['objects']} objects; "
          f"{result['epochs']} epochs at {cfg.augment.detector.input_size[0]} px")
    print(f"validation mAP@0.5 {val['map_50']:.4f}, mAP@[.5:.95] {val['map']:.4f}")
    per_class = ", ".join(f"{name} {c['ap50']:.4f}" for name, c in val["per_class"].items())
    print(f"validation AP@0.5 per class: {per_class}")
    print(f"wall time: prepare + augment {prepared - start:.0f} s, training {trained - prepared:.0f} s, "
          f"evaluation {evaluated - trained:.0f} s, total {evaluated - start:.0f} s")
    print(f"MLflow run {result['run_id']}; work folder {work}")


if __name__ == "__main__":
    main()
