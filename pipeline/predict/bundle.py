"""A bundle folder, as `export` writes it: model.onnx, bundle.json (labels, preprocessing,
post-processing), card.json (the model card), samples.png."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.tasks import TASKS

BUNDLE_FILE, ONNX_FILE, PT2_FILE, INT8_FILE = "bundle.json", "model.onnx", "model.pt2", "model.int8.onnx"
FORMAT_VERSION = 1  # of bundle.json and the graph's inputs and outputs; raised when `predict` must change
CARD_FILE, SAMPLES_FILE = "card.json", "samples.png"

COMMON = ("task", "labels", "input", "preprocessing", "postprocessing")
TILED = ("preprocessing.tiles.overlap", "preprocessing.tiles.merge_ios")  # resize: tile (sliced inference)
REEXPORT = "re-export the bundle (dvc repro export@<model>)"


def check_spec(spec, path: Path) -> None:
    """One clear error for a bundle.json that `predict` cannot use: not an object, an unknown task, a
    missing key, another format or version, sizes that are not sizes."""
    fix = REEXPORT
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: not a JSON object; {fix}")
    if spec.get("task") not in TASKS:
        raise ValueError(f"{path}: task {spec.get('task')!r} is not one of {', '.join(TASKS)}; {fix}")
    tiled = isinstance(spec.get("preprocessing"), dict) and spec["preprocessing"].get("resize") == "tile"
    required = TASKS[spec["task"]].step("bundled").required  # what `predict` reads for this task
    for key in (*COMMON, *required, *(TILED if tiled else ())):
        node = spec
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise ValueError(f"{path}: missing key '{key}' (a {spec['task']} bundle needs it); {fix}")
            node = node[part]
    if not isinstance(spec["labels"], list) or not spec["labels"]:
        raise ValueError(f"{path}: 'labels' must be a non-empty list of class names; {fix}")
    if spec.get("format") != "onnx" or spec.get("format_version") != FORMAT_VERSION:
        found = f"format {spec.get('format')!r} version {spec.get('format_version')!r}"
        newer = isinstance(spec.get("format_version"), int) and spec["format_version"] > FORMAT_VERSION
        raise ValueError(f"{path}: a bundle of {found}; this `predict` reads 'onnx' version {FORMAT_VERSION}: "
                         + ("update the pipeline" if newer else fix))
    pre = spec["preprocessing"]
    for key in ("input_size", "window"):
        value = pre.get(key)
        if value is not None and not (isinstance(value, list) and len(value) == 2
                                      and all(isinstance(v, int) and v > 0 for v in value)):
            raise ValueError(f"{path}: preprocessing.{key} {value!r} is not [width, height] in pixels; {fix}")


def check_model(spec: dict, session, path: Path) -> None:
    """bundle.json describes this graph: its input, its outputs (which tell the task) and one value
    per label."""
    inputs = [i.name for i in session.get_inputs()]
    if spec["input"] not in inputs:
        raise ValueError(f"{path}: input {spec['input']!r} is not the model's input ({', '.join(inputs)}); "
                         f"{REEXPORT}")
    task, outputs = TASKS[spec["task"]], session.get_outputs()
    names = tuple(o.name for o in outputs)
    if names != task.outputs:
        raise ValueError(f"{path}: the model's outputs {', '.join(names)} are not a {task.name}'s "
                         f"({', '.join(task.outputs)}): bundle.json's 'task' does not match the model; {REEXPORT}")
    per_image = outputs[0].shape[task.class_axis] if outputs[0].shape else None
    if isinstance(per_image, int) and per_image != len(spec["labels"]):
        raise ValueError(f"{path}: {len(spec['labels'])} labels for a model with {per_image} classes; {REEXPORT}")


def session_of(model: Path, threads: int = 0):
    """An onnxruntime session on the CPU; a model it cannot load is one clear error."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own exception types (InvalidProtobuf, Fail, ...) share no base
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{model}: ONNX Runtime cannot load it ({reason}); the file is damaged or not "
                         "a model: re-export the bundle") from None


@dataclass
class Bundle:
    root: Path
    spec: dict
    session: object  # onnxruntime.InferenceSession

    @classmethod
    def load(cls, root: str | Path, threads: int = 0, int8: bool = False) -> Bundle:
        """``int8``: run the bundle's quantized model (``export.int8.enabled``) instead of fp32."""
        root = Path(root)
        path = root / BUNDLE_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: {root} is not a bundle (make one with `dvc repro export`)")
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not valid JSON ({exc}); {REEXPORT}") from None
        check_spec(spec, path)
        if int8 and "int8" not in spec:
            raise ValueError(f"{root}: this bundle has no int8 model; export it with -S export.int8.enabled=true "
                             "(when the int8 model lost too much quality, card.json's parity.int8 says by how much)")
        model = root / (spec["int8"] if int8 else ONNX_FILE)
        if not model.is_file():
            raise FileNotFoundError(f"{model} not found: the bundle is incomplete; re-export it")
        session = session_of(model, threads)
        check_model(spec, session, path)
        return cls(root, spec, session)

    @property
    def task(self) -> str:
        return self.spec["task"]

    @property
    def kind(self):
        """How `predict` runs this task's bundles (pipeline.predict.bundled.Bundled)."""
        return TASKS[self.task].step("bundled")

    @property
    def labels(self) -> list[str]:
        return list(self.spec["labels"])

    def run(self, images: np.ndarray) -> list[np.ndarray]:
        """The graph's outputs for a float32 batch B x 3 x H x W of 0..255 pixels."""
        return self.session.run(None, {self.spec["input"]: np.ascontiguousarray(images, dtype=np.float32)})
