"""Load: `predict` over a folder of 1,000 generated images keeps its memory bounded (it streams)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import PROJECT_ROOT


def predict_load(bundle, images: int, out) -> dict:
    done = subprocess.run([sys.executable, "benchmarks/predict_load.py", "--bundle", str(bundle), "--images",
                           str(images), "--size", "96", "96", "--json", str(out)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "images/s" in done.stdout and "peak RSS" in done.stdout
    return json.loads(out.read_text())


def test_predict_over_1000_images_keeps_memory_bounded(bundles, tmp_path):
    small = predict_load(bundles / "classifier", 50, tmp_path / "small.json")
    large = predict_load(bundles / "classifier", 1000, tmp_path / "large.json")
    assert large["lines"] == large["predicted"] == 1000 and small["lines"] == 50
    growth = {run["images"]: run["peak_rss_mib"] - run["rss_before_mib"] for run in (small, large)}
    # 20x the images: the extra memory stays that of a batch, not of the folder (decoded, 1,000 images
    # of 96x96 hold 26 MiB as pixels and 110 MiB as the network's float input)
    assert growth[1000] <= growth[50] + 16, growth
