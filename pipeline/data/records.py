"""What importers find (:class:`Record`) and what validation accepts (:class:`Sample`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Record:
    """One input sample as an importer found it, before any check.

    Boxes are absolute ``xyxy`` pixels, or normalised centre/size when
    ``normalized_boxes`` (YOLO), in the frame the annotation was written for.
    """

    key: str  # unique, stable name for reports: the image's path relative to the data root
    image: Path | None = None  # None: the annotation names an image that is not there
    pixels: np.ndarray | None = None  # in-memory image (synthetic source)
    annotation: str | None = None  # annotation file (relative), for messages
    label: str | None = None  # image-level class (classification)
    labels: list[str] = field(default_factory=list)  # image-level classes (multi-label)
    boxes: list[list[float]] = field(default_factory=list)
    box_classes: list[str] = field(default_factory=list)
    normalized_boxes: bool = False
    declared_size: tuple[int, int] | None = None  # (width, height) the annotation states
    split: str | None = None  # a split fixed by the source (e.g. synthetic scenes)
    ignored_annotations: int = 0  # e.g. KITTI DontCare regions, COCO crowd regions, counted in the stats
    warnings: list[str] = field(default_factory=list)  # kept, but worth a look (stats.json lists them)
    problem: tuple[str, str] | None = None  # (code, message) found while importing


@dataclass
class Sample:
    """One accepted sample in canonical form (see pipeline/data/manifest.py)."""

    id: str
    file: str  # image path relative to the manifest's folder
    width: int
    height: int
    split: str | None = None
    label: int | None = None
    labels: list[int] = field(default_factory=list)  # the classes a multi-label image holds
    boxes: list[list[float]] = field(default_factory=list)
    box_labels: list[int] = field(default_factory=list)
    sha256: str = ""
    origin: str = ""  # where it came from, relative to the data root
    duplicate_of: str | None = None  # id of an identical image kept with it (same split)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "file": self.file,
            "width": self.width,
            "height": self.height,
            "split": self.split,
            "label": self.label,
            **({"labels": list(self.labels)} if self.labels else {}),
            "boxes": [[round(float(v), 3) for v in box] for box in self.boxes],
            "box_labels": list(self.box_labels),
            "sha256": self.sha256,
            "origin": self.origin,
            "duplicate_of": self.duplicate_of,
        }


@dataclass
class Rejection:
    key: str
    code: str
    reason: str
    file: str | None = None

    def to_json(self) -> dict:
        return {"item": self.key, "code": self.code, "reason": self.reason, "file": self.file}
