"""Benchmark: mAP evaluation time, faster_coco_eval against pycocotools (torchmetrics backends).

    python benchmarks/map_backends.py [--images 500] [--detections 100]

A realistic evaluation: per image a few ground-truth boxes and up to ``--detections`` scored
predictions (jittered copies of the truth plus random false positives), 4 classes. Prints both
times, their ratio, and the two mAPs (which must agree), measured in this run.
"""

from __future__ import annotations

import argparse
import time

import torch

import pipeline  # noqa: F401  (offline environment defaults)
from pipeline.detect.metrics import detection_metrics


def fixture(images: int, per_image: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    preds, targets = [], []
    for _ in range(images):
        n = int(torch.randint(1, 8, (1,), generator=g))
        xy = torch.rand(n, 2, generator=g) * 400
        truth = torch.cat([xy, xy + 10 + torch.rand(n, 2, generator=g) * 200], dim=1)
        labels = torch.randint(0, 4, (n,), generator=g)
        copies = truth.repeat(3, 1) + torch.randn(3 * n, 4, generator=g) * 8
        noise_xy = torch.rand(per_image - 3 * n, 2, generator=g) * 500
        noise = torch.cat([noise_xy, noise_xy + 5 + torch.rand(len(noise_xy), 2, generator=g) * 150], dim=1)
        boxes = torch.cat([copies, noise])
        preds.append({"boxes": boxes, "scores": torch.rand(len(boxes), generator=g),
                      "labels": torch.cat([labels.repeat(3), torch.randint(0, 4, (len(noise),), generator=g)])})
        targets.append({"boxes": truth, "labels": labels})
    return preds, targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--detections", type=int, default=100)
    args = parser.parse_args()
    preds, targets = fixture(args.images, args.detections)
    classes = ["a", "b", "c", "d"]
    seconds, maps = {}, {}
    for backend in ("faster_coco_eval", "pycocotools"):
        start = time.perf_counter()
        maps[backend] = detection_metrics(preds, targets, classes, backend)
        seconds[backend] = time.perf_counter() - start
    n = sum(len(p["boxes"]) for p in preds)
    print(f"{args.images} images, {n} predictions, {sum(len(t['boxes']) for t in targets)} objects")
    for backend in seconds:
        print(f"  {backend:17s} {seconds[backend]:6.2f} s  mAP {maps[backend]['map']:.4f}  "
              f"mAP@0.5 {maps[backend]['map_50']:.4f}")
    print(f"faster_coco_eval is {seconds['pycocotools'] / seconds['faster_coco_eval']:.1f}x faster")


if __name__ == "__main__":
    main()
