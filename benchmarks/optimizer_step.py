"""Benchmark: one optimizer step of each trained network, torch's default Adam against its fused kernel.

    python benchmarks/optimizer_step.py   # after `dvc repro` (the trained models/)

What every training step ends with (pipeline/transfer.py `make_optimizer`): AdamW over all the
network's parameters in two learning-rate groups, on the device this machine trains on. Times both
implementations on the same parameters and gradients in this run and this process, with the ratio
and the largest difference of the weights after the timed steps.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch

import pipeline  # noqa: F401  (offline environment defaults)
from pipeline.classify.evaluate import load_classifier
from pipeline.detect.train import load_detector
from pipeline.devices import accelerator_device
from pipeline.heatmap.train import load_fcn
from pipeline.transfer import fused_adam_supported

LOADERS = {"classifier": load_classifier, "fcn": load_fcn, "detector": load_detector, "multilabel": load_classifier}


def timed_steps(net: torch.nn.Module, fused: bool | None, steps: int) -> tuple[float, list[torch.Tensor]]:
    params = [p for p in net.parameters() if p.is_floating_point()]
    half = len(params) // 2
    optimizer = torch.optim.AdamW([{"params": params[:half], "lr": 1e-4}, {"params": params[half:]}], lr=1e-3,
                                  weight_decay=1e-4, fused=fused)
    generator = torch.Generator(device=params[0].device).manual_seed(0)
    for p in params:
        p.grad = torch.randn(p.shape, generator=generator, device=p.device) * 1e-3
    optimizer.step()  # the state is made on the first step: not timed
    if params[0].is_cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.step()
    if params[0].is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps, params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="models")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    device = accelerator_device("auto")
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, {args.steps} steps")
    print(f"{'network':<12} {'parameters':>11} {'default':>10} {'fused':>10} {'ratio':>6} {'max |diff|':>11}")
    for name, load in LOADERS.items():
        try:
            net = load(Path(args.models) / name)[0].to(device)
        except FileNotFoundError as exc:
            print(f"{name:<12} not trained: {exc}")
            continue
        if not fused_adam_supported(list(net.parameters())):
            print(f"{name:<12} no fused kernel on {device}: the training uses torch's default")
            continue
        default, expected = timed_steps(copy.deepcopy(net), None, args.steps)
        fused, got = timed_steps(net, True, args.steps)
        diff = max(float((a - b).detach().abs().max()) for a, b in zip(got, expected, strict=True))
        count = sum(p.numel() for p in expected)
        print(f"{name:<12} {count:>11,} {default * 1e3:>8.2f}ms {fused * 1e3:>8.2f}ms {default / fused:>5.2f}x "
              f"{diff:>11.2e}")


if __name__ == "__main__":
    main()
