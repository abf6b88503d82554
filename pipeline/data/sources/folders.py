"""Image folders: ``root/<class name>/*.jpg`` (classification)."""

from __future__ import annotations

from pathlib import Path

from pipeline.data.records import Record
from pipeline.data.sources.common import list_images, relkey

TASK = "classification"
LAYOUT = "one sub-folder per class, e.g. root/dolphin/*.jpg, root/seahorse/*.jpg"


def read(cfg, root: Path) -> tuple[list[Record], list[str] | None]:
    records = []
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for class_dir in class_dirs:
        for path in list_images(class_dir):
            records.append(Record(key=relkey(path, root), image=path, label=class_dir.name))
    return records, None
