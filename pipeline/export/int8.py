"""Int8 bundles (``export.int8.enabled``): ONNX Runtime's static quantization of the bundle's fp32
ONNX graph (QDQ format, int8 weights per channel, uint8 activations), calibrated on training
images through `predict`'s own preprocessing, then checked on validation images against the fp32
graph, by the quality each task compares (its `bundled` module: classifier accuracy and top-1
agreement, multi-label decision agreement, detector mAP@0.5). A graph whose quality drops by more
than ``export.int8.max_drop`` is not shipped: the report says why and the bundle keeps its fp32
model only. A task may decline quantization (the heatmap network: dense maps at any input size).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from pipeline.data.manifest import Manifest
from pipeline.io.images import read_image
from pipeline.predict.bundle import INT8_FILE, Bundle, session_of
from pipeline.predict.preprocess import network_batch


def split_images(manifest: Manifest, split: str, count: int) -> tuple[list, list[np.ndarray]]:
    samples = manifest.split(split)[:count]
    return samples, [read_image(manifest.path_of(s)).pixels for s in samples]


def quantize(fp32: Path, out: Path, spec: dict, calibration: list[np.ndarray]) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Images(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(network_batch(px, spec["preprocessing"]) for px in calibration)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {spec["input"]: batch}

    with tempfile.TemporaryDirectory() as work:
        prepared = Path(work) / "prepared.onnx"  # shapes inferred and graph folded, as ORT advises first
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=False)
        quantize_static(str(prepared), str(out), Images(), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)


def int8_model(settings: DictConfig, bundle: Bundle, manifest: Manifest) -> dict | None:
    """Write ``INT8_FILE`` next to the bundle's fp32 model and return its check (the quality its task
    compares: pipeline.predict.bundled); the file is removed again when the quality drops by more
    than ``settings.max_drop``. None for a task that is not quantized (the heatmap network)."""
    kind = bundle.kind
    if not kind.quantized:
        return None
    out = bundle.root / INT8_FILE
    _, calibration = split_images(manifest, "train", settings.calibration_images)
    quantize(bundle.root / "model.onnx", out, bundle.spec, calibration)
    samples, images = split_images(manifest, "val", settings.check_images)
    if not samples:
        raise ValueError("export.int8: the manifest has no validation images to check the int8 model on")
    quantized = Bundle(bundle.root, bundle.spec, session_of(out))
    report = {**kind.int8_compare(kind.int8_quality(bundle, samples, images, manifest),
                                  kind.int8_quality(quantized, samples, images, manifest)),
              "images": len(samples), "calibration_images": len(calibration),
              "size_mb": {"fp32": round((bundle.root / "model.onnx").stat().st_size / 2**20, 3),
                          "int8": round(out.stat().st_size / 2**20, 3)}}
    report["shipped"] = report["drop"] <= settings.max_drop
    if not report["shipped"]:
        out.unlink()
        print(f"warning: export {bundle.task}: the int8 model is not shipped: {report['metric']} dropped by "
              f"{report['drop']:.4f} (> export.int8.max_drop {settings.max_drop}); the bundle keeps fp32 only",
              file=sys.stderr)
    return report
