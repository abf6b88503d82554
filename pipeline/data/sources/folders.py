"""Image folders: ``root/<class name>/*.jpg`` (classification).

An image directly in ``root`` has no class and is rejected (``no_class_folder``); an empty class
folder is a warning in stats.json (the class is left out)."""

from __future__ import annotations

from pathlib import Path

from pipeline.data.records import Record
from pipeline.data.sources.common import list_images, relkey
from pipeline.io.images import is_image_file

TASK = "classification"
LAYOUT = "one sub-folder per class, e.g. root/dolphin/*.jpg, root/seahorse/*.jpg"


def read(cfg, root: Path) -> tuple[list[Record], list[str] | None]:
    records = []
    for path in sorted(p for p in root.iterdir() if p.is_file() and is_image_file(p) and not p.name.startswith(".")):
        records.append(Record(key=relkey(path, root), image=path, problem=(
            "no_class_folder", f"{path}: an image outside the class folders has no class; move it into "
                               f"{root}/<class>/ or out of the dataset")))
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    empty = []
    for class_dir in class_dirs:
        images = list_images(class_dir)
        empty += [] if images else [class_dir]
        records += [Record(key=relkey(path, root), image=path, label=class_dir.name) for path in images]
    if records:  # a dataset-wide note rides on the first record into stats.json's warnings
        records[0].warnings += [f"{d}: empty class folder; class {d.name!r} is left out" for d in empty]
    return records, None
