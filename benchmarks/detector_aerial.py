"""Benchmark: small objects in large images (data=synthetic_aerial: 1600x1200 scenes, objects of
12-48 px), the detector trained on tiles with sliced inference against the same detector on whole
letterboxed images, at the same training budget, in one run on this CPU.

    python benchmarks/detector_aerial.py [--letterbox-sizes 160,320] [hydra overrides ...]

Both settings train the detector of conf/ for the same number of optimizer steps of the same batch
size (the letterbox setting, with fewer items per epoch, gets proportionally more epochs) and are
scored the same way: COCO mAP on the whole validation images against every object of the
manifest, in the images' own pixels. Prints
validation mAP@0.5, mAP@[.5:.95], the training time, and the inference time per image (network,
post-processing and, for tiles, the merge; the batch of tiles of one image, or a batch of
letterboxed images). Runs go to MLflow (experiment cv-pipeline-benchmarks).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from detector_raccoon import print_table, train_and_evaluate

import pipeline  # noqa: F401  (offline environment defaults)
from pipeline.augment.stage import run_augment
from pipeline.config import compose
from pipeline.data.manifest import Manifest
from pipeline.data.prepare import prepare
from pipeline.detect.data import DetectionData
from pipeline.detect.epochs import training_epochs
from pipeline.detect.evaluate import predict
from pipeline.detect.metrics import detection_metrics
from pipeline.detect.train import load_detector
from pipeline.detect.views import Detector
from pipeline.io.images import read_image
from pipeline.predict.preprocess import batch, fit


def steps_per_epoch(cfg, work: Path, name: str) -> int:
    pipelines = work / f"probe_{name}"
    run_augment(cfg.augment, work / "prepared/manifest.json", pipelines, work / f"probe_{name}_reports", int(cfg.seed))
    data = DetectionData(work / "prepared/manifest.json", pipelines, int(cfg.train.detector.batch_size))
    return data.steps_per_epoch()


@torch.no_grad()
def whole_image_scores(work: Path, name: str) -> tuple[dict, float]:
    """Validation metrics against every object of the manifest, in the images' own pixels, and the
    inference seconds per image. Tiles: the evaluation's sliced inference. Letterbox: each image
    fitted as its eval pipeline does, its detections mapped back to the image; an object the
    letterbox shrinks below the box policy's minimum is still counted (a miss), whereas the
    evaluation stage scores the boxes that survive its eval pipeline."""
    net, anchors, coder, info = load_detector(work / f"detector_{name}")
    manifest = Manifest.read(work / "prepared/manifest.json")
    samples = manifest.split("val")
    truth = [{"boxes": torch.tensor(s.boxes, dtype=torch.float32).reshape(-1, 4),
              "labels": torch.tensor(s.box_labels, dtype=torch.int64)} for s in samples]
    start = time.perf_counter()
    if info["tiles"]:
        data = DetectionData(work / "prepared/manifest.json", work / f"augment_{name}")
        preds = predict(net, anchors, coder, info, data, "val")[0]
    else:
        preds = []
        for sample in samples:
            pixels = read_image(manifest.path_of(sample)).pixels
            fitted, placement = fit(pixels, tuple(info["input_size"]), "letterbox")
            found = Detector(net, anchors, coder, info)(torch.from_numpy(batch([fitted])))[0]
            boxes = placement.to_image(found["boxes"].numpy())
            preds.append({**found, "boxes": torch.from_numpy(boxes.astype(np.float32))})
    seconds = (time.perf_counter() - start) / len(samples)
    return detection_metrics(preds, truth, info["classes"]), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--letterbox-sizes", default="160", help="comma-separated square letterbox input sizes")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/")
    args = parser.parse_args()
    base = ["data=synthetic_aerial", "logger.experiment=cv-pipeline-benchmarks", "logger.progress_bar=false",
            "evaluate.detector.splits=[val]", *args.overrides]
    tiled = compose(base)
    work = Path(tempfile.mkdtemp(prefix="aerial-"))
    start = time.perf_counter()
    prepare(tiled.data, int(tiled.seed), work / "prepared", work / "prepare_reports", work / "prepare.json")
    print(f"prepare: {time.perf_counter() - start:.0f} s")
    tile_steps = steps_per_epoch(tiled, work, "tiles")
    budget = training_epochs(tiled.train.detector, tile_steps) * tile_steps
    settings = [("tiles", f"tiles {tiled.augment.detector.input_size[0]} px, sliced", tiled)]
    for size in (int(v) for v in args.letterbox_sizes.split(",") if v):
        whole = compose([*base, "augment/detector=ssd", f"augment.detector.input_size=[{size},{size}]"])
        steps = steps_per_epoch(whole, work, f"letterbox{size}")
        whole.train.detector.epochs = math.ceil(budget / steps)
        settings.append((f"letterbox{size}", f"whole image letterboxed to {size} px", whole))
    print(f"training budget: {budget} optimizer steps of {tiled.train.detector.batch_size} items each")
    rows = []
    for name, label, cfg in settings:
        result, _, train_s, _ = train_and_evaluate(cfg, work, name)
        val, per_image = whole_image_scores(work, name)
        print(f"{label}: {result['epochs']} epochs; validation mAP@0.5 {val['map_50']:.4f}, mAP@[.5:.95] "
              f"{val['map']:.4f} ({val['images']} images, {val['objects']} objects); training {train_s:.0f} s, "
              f"inference {per_image * 1000:.0f} ms per image; MLflow run {result['run_id']}")
        rows.append((label, result["epochs"], val["map_50"], val["map"], train_s, per_image))
    print_table(["setting", "epochs", "val mAP@0.5", "val mAP@[.5:.95]", "training", "inference per image"],
                [[label, str(epochs), f"{map50:.4f}", f"{map_all:.4f}", f"{train_s:.0f} s",
                  f"{per_image * 1000:.0f} ms"]
                 for label, epochs, map50, map_all, train_s, per_image in rows])
    print(f"work folder {work}")


if __name__ == "__main__":
    main()
