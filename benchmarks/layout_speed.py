"""Benchmark: the heatmap network (fcn) in the default memory layout and in channels-last.

    python benchmarks/layout_speed.py            # after `dvc repro` (the trained models/fcn)
    python benchmarks/layout_speed.py --untrained  # a fresh small_alexnet FCN: no pipeline run needed

Times, in this run and this process, what `train@fcn` and `evaluate@fcn` do with the network
(pipeline/models/layout.py): its heatmap of one scene at the evaluation's sizes, the sliding
window on one row of windows, and a dense training step (forward, cross-entropy, backward, AdamW)
on a batch of crops; each in both layouts, with the ratio and the largest difference of outputs.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
import torch.nn.functional as F

import pipeline  # noqa: F401  (offline environment defaults)
from pipeline.heatmap.fcn import FullyConvolutional
from pipeline.heatmap.sliding import sliding_window_logits
from pipeline.heatmap.train import load_fcn
from pipeline.models.classifier import build_classifier
from pipeline.schema import ClassifierModel


def seconds(work, repeats: int) -> tuple[float, torch.Tensor]:
    out = work()  # warm-up, outside the clock
    start = time.perf_counter()
    for _ in range(repeats):
        out = work()
    return (time.perf_counter() - start) / repeats, out


def network(args) -> FullyConvolutional:
    if not args.untrained:
        return load_fcn(args.model)[0]
    model = ClassifierModel(name="small_alexnet", pretrained="none", dropout=0.3, width=32, hidden=256)
    return FullyConvolutional(build_classifier(model, [str(c) for c in range(5)], (64, 64)), (64, 64)).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/fcn")
    parser.add_argument("--untrained", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    scene = torch.randint(0, 256, (1, 3, 480, 640), dtype=torch.uint8)
    crops = torch.randint(0, 256, (16, 3, 128, 128), dtype=torch.uint8)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'work':<44} {'default':>9} {'channels-last':>14} {'ratio':>6} {'max |diff|':>11}")
    for name, make in (
        ("heatmap of a 640x480 scene", lambda net: lambda: net(scene)),
        ("heatmap of the scene at 2.5x (1600x1200)",
         lambda net: lambda: net(F.interpolate(scene.float(), scale_factor=2.5, mode="bilinear"))),
        ("sliding window, one row of the scene", lambda net: lambda: sliding_window_logits(
            net.pooled, scene[0, :, : net.geometry.window[1]], net.geometry.window, net.geometry.stride)),
    ):
        net = network(args)  # one network in both layouts: the outputs compare
        with torch.no_grad():
            base, expected = seconds(make(net), args.repeats)
            fast, got = seconds(make(copy.deepcopy(net).fast_layout()), args.repeats)
        print(f"{name:<44} {base:>8.3f}s {fast:>13.3f}s {base / fast:>5.2f}x {(got - expected).abs().max():>11.2e}")

    def train_step(net: FullyConvolutional):
        net.train()
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)

        def step():
            logits = net(crops)
            loss = F.cross_entropy(logits, torch.zeros(logits.shape[0], *logits.shape[2:], dtype=torch.long))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return loss.detach()
        return step

    net = network(args)
    base, _ = seconds(train_step(copy.deepcopy(net)), args.repeats)
    fast, _ = seconds(train_step(copy.deepcopy(net).fast_layout()), args.repeats)
    print(f"{'dense training step, 16 crops of 128 px':<44} {base:>8.3f}s {fast:>13.3f}s {base / fast:>5.2f}x")


if __name__ == "__main__":
    main()
