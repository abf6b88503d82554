"""A detector trained on tiles of large images, end to end at a tiny size: the aerial preset's
composition, training on tile crops, sliced evaluation on whole images, a bundle whose `predict`
slices a large image and writes the merged boxes in the image's own pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pipeline.data.manifest import Manifest
from pipeline.detect.bundled import detect
from pipeline.detect.evaluate import evaluate_detector
from pipeline.detect.train import train_detector
from pipeline.export.build import export_bundle
from pipeline.io.images import read_image
from pipeline.predict import cli
from pipeline.predict.bundle import Bundle
from tests.conftest import prepare_and_augment, tiny_config

pytestmark = pytest.mark.xdist_group("tiled_detector")  # its module fixture is built once, on one worker

TINY_AERIAL = ["data=synthetic_aerial", "data.num_images=12", "data.image_size=[400,300]",
               "data.scale=[0.06,0.12]", "augment.detector.input_size=[96,96]", "train.detector.epochs=1",
               "train.detector.freeze_epochs=0", "train.detector.batch_size=8", "evaluate.detector.splits=[val]"]


@pytest.fixture(scope="module")
def tiled(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiled")
    cfg = tiny_config(root, *TINY_AERIAL)
    assert cfg.augment.detector.resize == "tile" and list(cfg.data.models) == ["detector"]
    manifest = prepare_and_augment(cfg, root)
    train_detector(cfg, manifest, root / "augment", root / "model")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # evaluating, then exporting in one process on one thread: the export's
    try:                      # trace once recorded layout-bound views there that ONNX could not convert
        metrics = evaluate_detector(cfg, manifest, root / "augment", root / "model", root / "metrics.json",
                                    root / "reports", root / "tables")
        export_bundle("detector", cfg, root / "model", manifest, root / "metrics.json", root / "bundle",
                      root / "parity.json")
    finally:
        torch.set_num_threads(threads)
    return root, metrics


def test_a_tiled_detector_is_evaluated_on_whole_images_and_exported_for_sliced_inference(tiled):
    root, metrics = tiled
    info = json.loads((root / "model/model.json").read_text())
    assert info["input_size"] == [96, 96] and info["tiles"]["overlap"] == 0.25
    manifest = Manifest.read(root / "prepared/manifest.json")
    assert metrics["val"]["images"] == len(manifest.split("val"))  # whole images, not tiles
    assert metrics["val"]["objects"] == sum(len(s.boxes) for s in manifest.split("val"))
    assert metrics["val"]["objects_too_small_after_resize"] == 0
    spec = json.loads((root / "bundle/bundle.json").read_text())
    assert spec["preprocessing"]["resize"] == "tile" and spec["preprocessing"]["tiles"]["merge_ios"] == 0.5
    parity = json.loads((root / "parity.json").read_text())
    assert parity["failed"] == [] and parity["inputs"][0][2:] == [96, 96]  # checked on tiles


def test_predict_slices_a_large_image_and_writes_the_merged_boxes(tiled, tmp_path, capsys):
    root, _ = tiled
    sample = Manifest.read(root / "prepared/manifest.json").split("val")[0]
    image = root / "prepared" / sample.file
    assert cli.main([str(root / "bundle"), str(image), "--json", str(tmp_path / "found.json"), "--quiet"]) == 0
    written = json.loads((tmp_path / "found.json").read_text())
    expected = detect(Bundle.load(root / "bundle"), [read_image(image).pixels])[0]
    assert len(written) == len(expected["boxes"]) > 0
    boxes = np.array([[d["bbox"][0], d["bbox"][1], d["bbox"][0] + d["bbox"][2], d["bbox"][1] + d["bbox"][3]]
                      for d in written])
    assert boxes == pytest.approx(expected["boxes"], abs=0.01)
    assert boxes[:, 2].max() > 96 or boxes[:, 3].max() > 96  # image pixels, beyond the first tile
    assert (boxes[:, 2] <= 400).all() and (boxes[:, 3] <= 300).all()
