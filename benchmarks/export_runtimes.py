"""Benchmark: ONNX Runtime against PyTorch eager (and the bundle's ExportedProgram) per exported model.

    python benchmarks/export_runtimes.py      # after `dvc repro` (needs models/*, bundles/*)

For each of the classifier, the FCN and the detector it loads the trained model the way `export`
does (the same graph: normalisation in, probabilities or decoded boxes out), the bundle's
model.onnx in onnxruntime and its model.pt2 (torch.export), and feeds all three the same real
validation images. Measured in this run, with the same thread count for every runtime:
  - latency at batch 1 (median of the timed calls, in ms);
  - throughput at batch 16 (images/s over the timed calls);
and the ratios ONNX Runtime / PyTorch eager (> 1: ONNX Runtime is faster).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import pipeline  # noqa: F401  (offline environment defaults)
from pipeline.config import load_params
from pipeline.data.manifest import Manifest
from pipeline.predict.bundle import PT2_FILE, Bundle
from pipeline.tasks import get_task

MODELS = ("classifier", "fcn", "detector")


def timings(call, inputs: np.ndarray, repeats: int) -> list[float]:
    """Seconds per call of ``call(inputs)``, after two untimed warm-up calls."""
    call(inputs)
    call(inputs)
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        call(inputs)
        out.append(time.perf_counter() - start)
    return out


def runtimes(graph: torch.nn.Module, bundle: Bundle) -> dict:
    exported = torch.export.load(str(bundle.root / PT2_FILE)).module()

    def torch_call(module):
        def call(images: np.ndarray):
            with torch.inference_mode():
                return module(torch.from_numpy(images))
        return call

    return {"PyTorch eager": torch_call(graph), "ExportedProgram": torch_call(exported), "ONNX Runtime": bundle.run}


def batch_of(first: np.ndarray, size: int) -> np.ndarray:
    """A batch of ``size`` images made by repeating the real ones in ``first`` (B x 3 x H x W)."""
    return np.ascontiguousarray(np.resize(first, (size, *first.shape[1:])), dtype=np.float32)


def measure(model: str, cfg, manifest: Manifest, bundles: Path, batch: int, repeats: int) -> dict:
    ex = get_task(model).step("export")(cfg, Path("models") / model, manifest, None)
    bundle = Bundle.load(bundles / model, threads=torch.get_num_threads())
    single, many = batch_of(ex.inputs[0], 1), batch_of(ex.inputs[0], batch)
    row = {"input": "x".join(str(d) for d in single.shape[2:])}
    for name, call in runtimes(ex.graph, bundle).items():
        row[name] = {"latency_ms": 1000 * statistics.median(timings(call, single, repeats)),
                     "images_per_s": batch * repeats / sum(timings(call, many, repeats))}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--manifest", default="data/prepared/manifest.json")
    parser.add_argument("--bundles", default="bundles")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per measurement")
    args = parser.parse_args()
    cfg, manifest = load_params(args.params), Manifest.read(args.manifest)
    print(f"threads: {torch.get_num_threads()} for every runtime; latency: median of {args.repeats} calls at "
          f"batch 1; throughput: {args.repeats} calls at batch {args.batch}")
    header = f"{'model':<11}{'input':>9}  {'runtime':<16}{'latency ms':>11}{'images/s':>10}"
    print(header + "\n" + "-" * len(header))
    for model in args.models:
        row = measure(model, cfg, manifest, Path(args.bundles), args.batch, args.repeats)
        for name in ("PyTorch eager", "ExportedProgram", "ONNX Runtime"):
            r = row[name]
            print(f"{model:<11}{row['input']:>9}  {name:<16}{r['latency_ms']:>11.2f}{r['images_per_s']:>10.1f}")
        eager, ort = row["PyTorch eager"], row["ONNX Runtime"]
        latency = eager["latency_ms"] / ort["latency_ms"]
        print(f"{model:<11}{'':>9}  ONNX Runtime / PyTorch eager: latency {latency:.2f}x "
              f"faster, throughput {ort['images_per_s'] / eager['images_per_s']:.2f}x")


if __name__ == "__main__":
    main()
