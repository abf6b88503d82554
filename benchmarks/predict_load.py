"""Benchmark: `predict` over a folder of many generated images: images/s and peak memory.

    python benchmarks/predict_load.py                        # bundles/classifier, 1,000 images
    python benchmarks/predict_load.py --bundle bundles/detector --images 300 --size 320 240

Writes ``--images`` random PNGs (``--size`` W H) into a temporary folder, then runs `predict`'s own
code on the folder in this process (onnxruntime, no torch) and prints, measured in this run:
images/s, the resident memory before predicting and its peak while predicting, so the growth
with the folder's size is visible. ``--json`` writes the same figures to a file.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.predict.bundle import Bundle
from pipeline.predict.cli import run


def memory_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process, from /proc (Linux). Not ru_maxrss: Linux
    carries that over from the parent across exec, so a child of a big process reports the parent's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> None:
    """Start VmHWM again from the current RSS (Linux >= 4.0), so the peak is that of what follows.
    A peak that cannot be reset would be that of writing the images: an error, not a figure."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError as exc:
        raise SystemExit(f"error: cannot reset the memory peak (/proc/self/clear_refs: {exc}); "
                         "the peak would not be predict's") from None
    peak, now = memory_mib("VmHWM"), memory_mib("VmRSS")
    if peak > now + 2:
        raise SystemExit(f"error: the memory peak was not reset ({peak:.1f} MiB > {now:.1f} MiB now)")


def write_images(folder: Path, count: int, size: tuple[int, int], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img_{i:05d}.png", compress_level=1)


def measure(bundle_dir: str | Path, count: int, size: tuple[int, int], batch: int) -> dict:
    bundle = Bundle.load(bundle_dir)
    with tempfile.TemporaryDirectory() as tmp:
        folder, results = Path(tmp) / "images", Path(tmp) / "predictions.json"
        folder.mkdir()
        write_images(folder, count, size)
        reset_peak()
        before = memory_mib("VmRSS")
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()) as lines:
            status = run(bundle, [str(folder)], str(results), None, batch, quiet=True)
        seconds = time.perf_counter() - start
        predicted = len(json.loads(results.read_text())) if bundle.task != "detector" else None
    return {"bundle": str(bundle_dir), "task": bundle.task, "images": count, "size": list(size), "batch": batch,
            "status": status, "lines": len(lines.getvalue().splitlines()), "predicted": predicted,
            "seconds": round(seconds, 3), "images_per_s": round(count / seconds, 1),
            "rss_before_mib": round(before, 1), "peak_rss_mib": round(memory_mib("VmHWM"), 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default="bundles/classifier")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, nargs=2, default=(128, 128), metavar=("W", "H"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    figures = measure(args.bundle, args.images, tuple(args.size), args.batch)
    print(f"predict ({figures['task']}, {args.bundle}): {figures['images']} images of {args.size[0]}x{args.size[1]} "
          f"in {figures['seconds']:.1f} s = {figures['images_per_s']:.1f} images/s; "
          f"RSS {figures['rss_before_mib']:.0f} MiB "
          f"before, peak RSS {figures['peak_rss_mib']:.0f} MiB while predicting "
          f"(+{figures['peak_rss_mib'] - figures['rss_before_mib']:.1f} MiB)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return figures["status"]


if __name__ == "__main__":
    sys.exit(main())
