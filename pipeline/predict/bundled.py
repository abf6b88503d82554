"""How `predict` runs a bundle of one task: the torch-free half of a task.

Each task writes its own in its package (``<package>/bundled.py``) and names it in the registry
(pipeline/tasks.py, ``bundled``); `predict`, the export's sample picture, the int8 check and the
bundle check look it up there, so none of them names a task.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Iterable

import numpy as np
from PIL import Image

IMAGE_INPUT = ("preprocessing.input_size", "preprocessing.resize", "preprocessing.pad_fill")


class Bundled(ABC):
    required: tuple[str, ...] = IMAGE_INPUT  # bundle.json keys `predict` reads beyond the common ones
    json_layout = "object"     # `predict --json`: {image: value} ("object") or a list of records ("list")
    per_image = False          # True: one image per ONNX Runtime call (inputs at their own size)
    picture = "classes"        # `predict --out`: <stem>_<picture>.png
    # `export.int8` applies: the task then defines int8_quality(bundle, samples, images, manifest) -> dict
    # (what the check compares for a graph, fp32 or int8, on validation images) and
    # int8_compare(fp32, int8) -> {metric, fp32, int8, drop, ...} (shipped when `drop` is small enough)
    quantized = True
    INT8_HOOKS = ("int8_quality", "int8_compare")

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        missing = [name for name in cls.INT8_HOOKS if cls.quantized and not callable(getattr(cls, name, None))]
        if missing:
            raise TypeError(f"{cls.__name__} is quantized but has no {', '.join(missing)}; define them or set "
                            "quantized = False")

    @abstractmethod
    def infer(self, bundle, images: list[np.ndarray]) -> list[Any]:
        """One result per image (H x W x 3 uint8, any sizes)."""

    @abstractmethod
    def line(self, name: str, result, bundle) -> str:
        """`predict`'s line for one image (``name``: the file's shown name)."""

    @abstractmethod
    def records(self, path: str, result, bundle, number: int) -> Iterable[tuple[Any, str | None]]:
        """What `--json` holds for the ``number``-th image: (value, key) pairs; the key is the image's
        for the object layout, None for the list layout's records."""

    @abstractmethod
    def draw(self, pixels: np.ndarray, result, bundle) -> Image.Image:
        """The picture of one image's result (`predict --out`, the bundle's samples.png)."""


def probabilities(bundle, images: list[np.ndarray]) -> np.ndarray:
    """N x K: the first output of a whole-image network on ``images`` fitted to its input."""
    from pipeline.predict.preprocess import fit_batch

    return bundle.run(fit_batch(images, bundle.spec["preprocessing"])[0])[0]
