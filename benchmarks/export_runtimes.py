"""Benchmark: ONNX Runtime (fp32 and int8) against PyTorch eager (and the bundle's ExportedProgram)
per exported model.

    python benchmarks/export_runtimes.py      # after `dvc repro` (needs models/*, bundles/*)

For each of the classifier, the FCN and the detector it loads the trained model the way `export`
does (the same graph: normalisation in, probabilities or decoded boxes out), the bundle's
model.onnx in onnxruntime and its model.pt2 (torch.export), and feeds all three the same real
validation images. For the classifier and the detector it also quantizes the bundle's ONNX model
to int8 as `export.int8.enabled` does (in a copy of the bundle, with export.int8's settings) and
checks it on validation images. Measured in this run, with the same thread count for every runtime:
  - latency at batch 1 (median of the timed calls, in ms);
  - throughput at batch 16 (images/s over the timed calls);
and the ratios ONNX Runtime (fp32, int8) / PyTorch eager (> 1: faster), with int8's quality drop.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import pipeline  # noqa: F401  (offline environment defaults)
from pipeline.config import load_params
from pipeline.data.manifest import Manifest
from pipeline.export.int8 import int8_model
from pipeline.predict.bundle import INT8_FILE, PT2_FILE, Bundle, session_of
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


def quantized(model: str, cfg, manifest: Manifest, bundle: Bundle, work: Path) -> tuple[dict | None, object]:
    """(the int8 check, the int8 model's run) of a copy of ``bundle``; (None, None) for the FCN."""
    if not bundle.kind.quantized:
        return None, None
    copy = Path(shutil.copytree(bundle.root, work / model))
    report = int8_model(cfg.export.int8, Bundle(copy, bundle.spec, session_of(copy / "model.onnx")), manifest)
    if not (copy / INT8_FILE).is_file():
        return report, None
    return report, Bundle(copy, bundle.spec, session_of(copy / INT8_FILE, torch.get_num_threads())).run


def measure(model: str, cfg, manifest: Manifest, bundles: Path, batch: int, repeats: int, work: Path) -> dict:
    ex = get_task(model).step("export")(cfg, Path("models") / model, manifest, None)
    bundle = Bundle.load(bundles / model, threads=torch.get_num_threads())
    single, many = batch_of(ex.inputs[0], 1), batch_of(ex.inputs[0], batch)
    row = {"input": "x".join(str(d) for d in single.shape[2:])}
    calls = runtimes(ex.graph, bundle)
    row["int8"], int8_run = quantized(model, cfg, manifest, bundle, work)
    if int8_run is not None:
        calls["ONNX Runtime int8"] = int8_run
    for name, call in calls.items():
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
    header = f"{'model':<11}{'input':>9}  {'runtime':<18}{'latency ms':>11}{'images/s':>10}"
    print(header + "\n" + "-" * len(header))
    for model in args.models:
        with tempfile.TemporaryDirectory() as work:
            row = measure(model, cfg, manifest, Path(args.bundles), args.batch, args.repeats, Path(work))
        names = [n for n in ("PyTorch eager", "ExportedProgram", "ONNX Runtime", "ONNX Runtime int8") if n in row]
        for name in names:
            r = row[name]
            print(f"{model:<11}{row['input']:>9}  {name:<18}{r['latency_ms']:>11.2f}{r['images_per_s']:>10.1f}")
        eager = row["PyTorch eager"]
        for name in names[2:]:
            ort = row[name]
            print(f"{model:<11}{'':>9}  {name} / PyTorch eager: latency {eager['latency_ms'] / ort['latency_ms']:.2f}x "
                  f"faster, throughput {ort['images_per_s'] / eager['images_per_s']:.2f}x")
        if row["int8"]:
            q = row["int8"]
            print(f"{model:<11}{'':>9}  int8 {q['metric']} on {q['images']} validation images: fp32 {q['fp32']:.4f}, "
                  f"int8 {q['int8']:.4f} (drop {q['drop']:.4f}{'' if q['shipped'] else ', over export.int8.max_drop'})"
                  f"; {q['size_mb']['fp32']:.2f} MB -> {q['size_mb']['int8']:.2f} MB")


if __name__ == "__main__":
    main()
