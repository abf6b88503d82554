"""Benchmark: the detector on a real dataset, on this CPU, over several training seeds: raccoon
(160 photos, one class), BCCD (292 blood smears, three classes, about 13 dense cells per image), or
the built-in synthetic data of the default DAG (a check that a setting holds there too).

    python benchmarks/detector_raccoon.py [--data raccoon|bccd|synthetic] [--root PATH] [--seeds 42,43,44]
                                          [--setting NAME OVERRIDE ...] ... [hydra overrides ...]

Prepares the dataset once with the project's seed (its data preset's split: raccoon 70/20/10
train/val/test, BCCD its own train/val lists, synthetic 70/20/10 as `make repro`) and, per setting,
the augmentation pipelines; then trains the detector of conf/ and evaluates it on validation and test
once per training seed.
Settings: the defaults (with any overrides given), and each ``--setting NAME OVERRIDE ...`` (e.g.
``--setting ema train.detector.ema_epochs=4`` or ``--setting 224px augment.detector.input_size=[224,224]``),
each measured apart from the others. Prints every run, then a table per setting of mean ± sd over
the seeds: validation and test mAP@0.5 and mAP@[.5:.95], epochs, input size and training seconds.
The runs go to MLflow (experiment cv-pipeline-benchmarks). Run one benchmark at a time: two trainings
sharing the cores each run several times slower (the threads of one wait on the other's).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from seeds import print_table, spread

import pipeline  # noqa: F401  (offline environment defaults)
from pipeline.augment.stage import run_augment
from pipeline.config import compose
from pipeline.data.prepare import prepare
from pipeline.detect.evaluate import evaluate_detector
from pipeline.detect.train import train_detector

METRICS = ("map_50", "map")


def train_and_evaluate(cfg, work: Path, pipelines: Path, name: str) -> dict:
    """One training and its evaluation: {split: metrics}, training seconds, epochs, input size."""
    manifest, model = work / "prepared/manifest.json", work / f"detector_{name}"
    start = time.perf_counter()
    result = train_detector(cfg, manifest, pipelines, model)
    seconds = time.perf_counter() - start
    metrics = evaluate_detector(cfg, manifest, pipelines, model, work / f"detector_{name}.json",
                                work / f"reports_{name}", work / f"pr_{name}")
    size = json.loads((model / "model.json").read_text())["input_size"][0]  # auto: as chosen
    return {"metrics": metrics, "seconds": seconds, "epochs": result["epochs"], "size": size,
            "run_id": result["run_id"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=["raccoon", "bccd", "synthetic"], default="raccoon",
                        help="the data preset (synthetic: the built-in data of the default DAG)")
    parser.add_argument("--root", help="the dataset folder (default: the preset's, in ../shared/datasets)")
    parser.add_argument("--seeds", default="42,43,44", help="training seeds (the split keeps the project's)")
    parser.add_argument("--setting", nargs="+", action="append", default=[], metavar="NAME OVERRIDE",
                        help="a named setting: Hydra overrides on top of the defaults")
    parser.add_argument("--skip-defaults", action="store_true", help="only the named settings")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/, for every setting")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    root = [f"data.root={Path(args.root).resolve()}"] if args.root else []
    base = [f"data={args.data}", *root, "logger.experiment=cv-pipeline-benchmarks", "logger.progress_bar=false",
            *args.overrides]
    settings = ([] if args.skip_defaults else [("defaults", [])]) + [(s[0], s[1:]) for s in args.setting]
    cfg = compose(base)
    work = Path(tempfile.mkdtemp(prefix=f"{args.data}-"))
    prepare(cfg.data, cfg.seed, work / "prepared", work / "prepare_reports", work / "prepare.json")
    rows = []
    for name, overrides in settings:
        pipelines = work / f"augment_{name}"
        run_augment(compose([*base, *overrides]).augment, work / "prepared/manifest.json", pipelines,
                    work / f"augment_{name}_reports", cfg.seed)
        runs = []
        for seed in seeds:
            r = train_and_evaluate(compose([*base, *overrides, f"seed={seed}"]), work, pipelines, f"{name}_{seed}")
            shown = "; ".join(f"{split} mAP@0.5 {m['map_50']:.4f}, mAP@[.5:.95] {m['map']:.4f}"
                              for split, m in r["metrics"].items() if split in ("val", "test"))
            print(f"{args.data} {name}, seed {seed}: {shown}; {r['epochs']} epochs at {r['size']} px, "
                  f"training {r['seconds']:.0f} s (MLflow run {r['run_id']})", flush=True)
            runs.append(r)
        splits = [s for s in ("val", "test") if s in runs[0]["metrics"]]
        rows.append([name, *(spread([r["metrics"][s][k] for r in runs], 4) for s in splits for k in METRICS),
                     f"{runs[0]['epochs']} at {runs[0]['size']} px", spread([r["seconds"] for r in runs], 0) + " s"])
    print_table([f"{args.data}: setting ({len(seeds)} seeds, mean ± sd)",
                 *(f"{s} {label}" for s in splits for label in ("mAP@0.5", "mAP@[.5:.95]")),
                 "epochs", "training"], rows)
    print(f"work folder {work}")


if __name__ == "__main__":
    main()
