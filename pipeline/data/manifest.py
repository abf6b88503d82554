"""The canonical manifest: one JSON file describing a prepared dataset.

Every source (synthetic, folders, VOC, COCO, KITTI, YOLO, CSV) ends up in this form::

    {
      "format": "cvpipe-manifest", "version": 1,
      "task": "detection" | "classification" | "multilabel",
      "classes": ["circle", "square", ...],          # class id = index in this list
      "source": {"format": "voc", "root": "../shared/datasets/raccoon"},
      "samples": [
        {"id": "raccoon-1.jpg",                      # unique, stable
         "file": "images/raccoon-1.jpg",             # relative to the manifest's folder;
                                                     # RGB, EXIF orientation already applied
         "width": 650, "height": 417,                # pixels as displayed
         "split": "train" | "val" | "test" | "scene",
         "label": 0 | null,                          # image-level class id (classification)
         "labels": [0, 2],                           # the image's class ids (multi-label only)
         "boxes": [[x1, y1, x2, y2], ...],           # absolute pixels, float, continuous coords
         "box_labels": [0, ...],                     # class id of each box
         "sha256": "...",                            # hash of the decoded pixels
         "origin": "images/raccoon-1.jpg"},          # the source file, relative to the data root
        ...
      ]
    }

Samples are written one per line so that diffs stay readable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.data.records import Sample
from pipeline.io.atomic import atomic_write_text

MANIFEST_FORMAT = "cvpipe-manifest"
MANIFEST_VERSION = 1
SPLITS = ("train", "val", "test")


@dataclass
class Manifest:
    task: str
    classes: list[str]
    samples: list[Sample]
    source: dict = field(default_factory=dict)
    root: Path = Path(".")  # folder the sample files are relative to

    def split(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.split == name]

    def split_names(self) -> list[str]:
        return sorted({s.split for s in self.samples})

    def path_of(self, sample: Sample) -> Path:
        return self.root / sample.file

    def dumps(self) -> str:
        header = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "task": self.task,
            "classes": self.classes,
            "source": self.source,
        }
        head = json.dumps(header, sort_keys=True)[:-1]
        rows = ",\n".join("  " + json.dumps(s.to_json(), sort_keys=True) for s in self.samples)
        return f'{head}, "samples": [\n{rows}\n]}}\n'

    def write(self, path: str | Path) -> None:
        atomic_write_text(path, self.dumps())

    @classmethod
    def read(cls, path: str | Path) -> Manifest:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no manifest here; run the prepare stage first (dvc repro prepare)")
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != MANIFEST_FORMAT or data.get("version") != MANIFEST_VERSION:
            raise ValueError(
                f"{path}: not a version-{MANIFEST_VERSION} {MANIFEST_FORMAT} file; re-run the prepare stage"
            )
        samples = [Sample(**row) for row in data["samples"]]
        return cls(data["task"], data["classes"], samples, data.get("source", {}), path.parent)
