"""Benchmark: the default detector on a real dataset, on this CPU: raccoon (160 photos, one class)
or BCCD (292 blood smears, three classes, about 13 dense cells per image).

    python benchmarks/detector_raccoon.py [--data raccoon|bccd] [--root PATH] [--input-sizes 160,224,320]
                                          [hydra overrides ...]

Prepares the dataset (its data preset: a 70/20/10 train/val/test split) and its augmentation
pipelines in a temporary folder, trains the detector of conf/ (with any overrides given, e.g.
train.detector.epochs=30) and evaluates it. Prints validation mAP@0.5, mAP@[.5:.95], the AP@0.5
of each class and the wall time of training and of evaluation. The run goes to MLflow
(experiment cv-pipeline-benchmarks). With --input-sizes, one training per square input size (the
detector's `augment.detector.input_size`) on the same prepared data, and a table of all of them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pipeline  # noqa: F401  (offline environment defaults)
from pipeline.augment.stage import run_augment
from pipeline.config import compose
from pipeline.data.prepare import prepare
from pipeline.detect.evaluate import evaluate_detector
from pipeline.detect.train import train_detector


def train_and_evaluate(cfg, work: Path, name: str) -> tuple[dict, dict, float, float]:
    """(training result, validation metrics, training seconds, evaluation seconds) of one setting."""
    manifest, pipelines, model = work / "prepared/manifest.json", work / f"augment_{name}", work / f"detector_{name}"
    run_augment(cfg.augment, manifest, pipelines, work / f"augment_{name}_reports", int(cfg.seed))
    start = time.perf_counter()
    result = train_detector(cfg, manifest, pipelines, model)
    trained = time.perf_counter()
    metrics = evaluate_detector(cfg, manifest, pipelines, model, work / f"detector_{name}.json",
                                work / f"reports_{name}", work / f"pr_{name}")
    return result, metrics["val"], trained - start, time.perf_counter() - trained


def print_table(header: list[str], rows: list[list[str]]) -> None:
    """A Markdown table of already formatted cells (the README's tables come from it)."""
    print("\n| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=["raccoon", "bccd"], default="raccoon", help="the data preset")
    parser.add_argument("--root", help="the dataset folder (default: the preset's, in ../shared/datasets)")
    parser.add_argument("--input-sizes", help="comma-separated square input sizes to compare, e.g. 160,224,320")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/")
    args = parser.parse_args()
    root = [f"data.root={Path(args.root).resolve()}"] if args.root else []
    base = [f"data={args.data}", *root, "logger.experiment=cv-pipeline-benchmarks", "logger.progress_bar=false",
            *args.overrides]
    cfg = compose(base)
    work = Path(tempfile.mkdtemp(prefix=f"{args.data}-"))
    start = time.perf_counter()
    prepare(cfg.data, int(cfg.seed), work / "prepared", work / "prepare_reports", work / "prepare.json")
    print(f"prepare: {time.perf_counter() - start:.0f} s")
    sizes = [int(v) for v in args.input_sizes.split(",")] if args.input_sizes else [None]
    rows = []
    for size in sizes:
        setting = compose([*base, f"augment.detector.input_size=[{size},{size}]"]) if size else cfg
        name = str(size) if size else "default"
        result, val, train_s, eval_s = train_and_evaluate(setting, work, name)
        px = json.loads((work / f"detector_{name}" / "model.json").read_text())["input_size"][0]  # auto: chosen
        print(f"{args.data}: {val['images']} validation images, {val['objects']} objects; "
              f"{result['epochs']} epochs at {px} px")
        print(f"validation mAP@0.5 {val['map_50']:.4f}, mAP@[.5:.95] {val['map']:.4f}")
        per_class = ", ".join(f"{name} {c['ap50']:.4f}" for name, c in val["per_class"].items())
        print(f"validation AP@0.5 per class: {per_class}")
        print(f"wall time: training {train_s:.0f} s, evaluation {eval_s:.0f} s; MLflow run {result['run_id']}")
        rows.append((px, result["epochs"], val["map_50"], val["map"], train_s, eval_s))
    if len(rows) > 1:
        print_table(["input", "epochs", "val mAP@0.5", "val mAP@[.5:.95]", "training", "evaluation"],
                    [[f"{px} px", str(epochs), f"{map50:.4f}", f"{map_all:.4f}", f"{train_s:.0f} s", f"{eval_s:.0f} s"]
                     for px, epochs, map50, map_all, train_s, eval_s in rows])
    print(f"work folder {work}")


if __name__ == "__main__":
    main()
