"""Image folders: ``root/<class name>/*.jpg`` (classification), or with the split given by the
layout: ``root/train/<class name>/``, ``root/val/<class name>/`` (and ``test/``; ``valid`` or
``validation`` name the validation split too).

An image directly in ``root`` (or in a split folder) has no class and is rejected
(``no_class_folder``); an empty class folder is a warning in stats.json (the class is left out)."""

from __future__ import annotations

from pathlib import Path

from pipeline.data.records import Record
from pipeline.data.sources.common import folders_of, list_images, relkey, split_folders, split_of_first_folder
from pipeline.io.images import is_image_file

TASK = "classification"
LAYOUT = "one sub-folder per class, e.g. root/dolphin/*.jpg, root/seahorse/*.jpg"


def read(cfg, root: Path) -> tuple[list[Record], list[str] | None]:
    records = []
    parents = split_folders(root) or [root]
    for parent in parents:
        for path in sorted(p for p in parent.iterdir() if p.is_file() and is_image_file(p)
                           and not p.name.startswith(".")):
            records.append(Record(key=relkey(path, root), image=path, problem=(
                "no_class_folder", f"{path}: an image outside the class folders has no class; move it into "
                                   f"{parent}/<class>/ or out of the dataset")))
    class_dirs = [d for parent in parents for d in folders_of(parent)]
    empty = []
    for class_dir in class_dirs:
        images = list_images(class_dir)
        empty += [] if images else [class_dir]
        records += [Record(key=relkey(path, root), image=path, label=class_dir.name) for path in images]
    if records:  # a dataset-wide note rides on the first record into stats.json's warnings
        records[0].warnings += [f"{d}: empty class folder; class {d.name!r} is left out" for d in empty]
    return records, None


def given_split(cfg, root: Path, records: list[Record]) -> tuple[dict[str, str] | None, str]:
    """The split of the train/val/test layout: a record's first folder names it."""
    return split_of_first_folder(root, split_folders(root), records)
