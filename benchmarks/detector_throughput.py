"""Benchmark: training and inference throughput of the default detector on this CPU.

    python benchmarks/detector_throughput.py      # after `dvc repro` (needs data/prepared, data/augment)

Builds the detector of params.yaml (model.detector, its anchors, train.detector's loss) and feeds
it real augmented training batches. Prints, measured in this run, images/s of:
  - the data (decode + augment + collate, in this process);
  - a training step (forward, focal loss, backward, AdamW step) with the backbone frozen (the
    warm-up epochs); then with every layer trained, in the default memory layout and in
    channels-last (what training uses), and channels-last with the stem frozen
    (train.detector.frozen_stem), with the ratios to the first; and that with the neck and heads in
    bf16 (what `trainer.precision: auto` trains on a CPU with native bf16, pipeline/precision.py)
    with its ratio to fp32;
  - inference (forward + post-processing with NMS) at batch 16, and the latency at batch 1.
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch

import pipeline  # noqa: F401  (offline environment defaults)
from pipeline.config import load_params
from pipeline.detect.data import DetectionData
from pipeline.detect.settings import DetectorModel
from pipeline.detect.train import build_detector, detector_module
from pipeline.detect.views import Detector, resolved_flip
from pipeline.precision import cpu_has_native_bf16


def images_per_second(step, batches: list[dict], repeats: int) -> float:
    step(batches[0])  # warm-up, outside the clock
    count, start = 0, time.perf_counter()
    for batch in itertools.islice(itertools.cycle(batches), repeats):
        step(batch)
        count += len(batch["images"])
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--manifest", default="data/prepared/manifest.json")
    parser.add_argument("--pipelines", default="data/augment")
    parser.add_argument("--steps", type=int, default=10, help="timed batches per measurement")
    args = parser.parse_args()
    cfg = load_params(args.params)
    tc = cfg.train.detector
    torch.manual_seed(cfg.seed)
    data = DetectionData(args.manifest, args.pipelines, tc.batch_size, 0, cfg.seed)
    size = data.input_size()  # the augment stage's (with input_size: auto, chosen from the data)
    net, anchors, coder = build_detector(DetectorModel.of(cfg.model.detector), data.classes, size)
    module = detector_module(cfg, net, anchors, coder, len(data.classes), size, data.steps_per_epoch())
    batches, start = [], time.perf_counter()
    for batch in itertools.islice(data.train_dataloader(), args.steps):
        batches.append(batch)
    loading = sum(len(b["images"]) for b in batches) / (time.perf_counter() - start)
    optimizer = torch.optim.AdamW(net.parameters(), lr=tc.lr)

    def train_step(batch):
        optimizer.zero_grad()
        module.loss(*net(batch["images"]), batch["boxes"], batch["labels"])["loss"].backward()
        optimizer.step()

    print(f"detector {cfg.model.detector.backbone} + {cfg.model.detector.neck} neck at "
          f"{size[0]}x{size[1]}, {len(anchors)} anchors, batch {tc.batch_size}, torch threads "
          f"{torch.get_num_threads()}")
    print(f"data (decode + augment + collate, 1 process): {loading:.0f} img/s")
    net.train()
    module.set_backbone_trainable(False)
    print(f"training step, backbone frozen: {images_per_second(train_step, batches, args.steps):.1f} img/s")
    module.frozen_stem = False
    module.set_backbone_trainable(True)
    base = images_per_second(train_step, batches, args.steps)
    print(f"training step, all layers, default layout: {base:.1f} img/s")
    module.on_fit_start()  # channels-last, as training does
    speed = images_per_second(train_step, batches, args.steps)
    print(f"training step, all layers, channels-last: {speed:.1f} img/s ({speed / base:.2f}x)")
    if net.stem():
        module.frozen_stem = True
        module.set_backbone_trainable(True)
        speed = images_per_second(train_step, batches, args.steps)
        print(f"training step, channels-last, stem frozen: {speed:.1f} img/s ({speed / base:.2f}x)")
    if cpu_has_native_bf16():
        net.dense_dtype = torch.bfloat16
        dense = images_per_second(train_step, batches, args.steps)
        net.dense_dtype = None
        fp32 = images_per_second(train_step, batches, args.steps)  # again, after: the machine's drift shows
        print(f"training step, as above with the neck and heads in bf16 (the default on this CPU): {dense:.1f} "
              f"img/s ({dense / speed:.2f}x and {dense / fp32:.2f}x the fp32 step measured before and after it)")
    net.channels_last = False
    net.to(memory_format=torch.contiguous_format)
    net.eval()

    postprocess = {**tc.postprocess, "flip": resolved_flip(tc.postprocess.flip, data.pipelines[True])}
    detector = Detector(net, anchors, coder, {"input_size": list(size), "postprocess": postprocess})

    def infer(batch):
        detector(batch["images"])

    speed = images_per_second(infer, batches, args.steps)
    print(f"inference + post-processing, batch {tc.batch_size}: {speed:.1f} img/s")
    singles = [{"images": b["images"][:1]} for b in batches]
    latency = 1000 / images_per_second(infer, singles, args.steps)
    print(f"inference latency, batch 1: {latency:.1f} ms")


if __name__ == "__main__":
    main()
