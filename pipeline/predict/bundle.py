"""A bundle folder, as `export` writes it: model.onnx, bundle.json (labels, preprocessing,
post-processing), card.json (the model card), samples.png."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.tasks import TASKS

BUNDLE_FILE, ONNX_FILE, TORCHSCRIPT_FILE = "bundle.json", "model.onnx", "model.torchscript.pt"
CARD_FILE, SAMPLES_FILE = "card.json", "samples.png"


@dataclass
class Bundle:
    root: Path
    spec: dict
    session: object  # onnxruntime.InferenceSession

    @classmethod
    def load(cls, root: str | Path, threads: int = 0) -> Bundle:
        import onnxruntime as ort

        root = Path(root)
        path = root / BUNDLE_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: {root} is not a bundle (make one with `dvc repro export`)")
        spec = json.loads(path.read_text())
        if spec.get("task") not in TASKS:
            raise ValueError(f"{path}: task {spec.get('task')!r} is not one of {', '.join(TASKS)}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(root / ONNX_FILE), options, providers=["CPUExecutionProvider"])
        return cls(root, spec, session)

    @property
    def task(self) -> str:
        return self.spec["task"]

    @property
    def labels(self) -> list[str]:
        return list(self.spec["labels"])

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        """The graph's outputs for a float32 batch B x 3 x H x W of 0..255 pixels."""
        return self.session.run(None, {self.spec["input"]: np.ascontiguousarray(images, dtype=np.float32)})
