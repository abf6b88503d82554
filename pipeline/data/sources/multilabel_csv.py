"""Multi-label CSV: ``filename,labels`` with the classes of each image separated by spaces
(``street.jpg,car person bicycle``) or by ``data.label_separator`` (``;`` gives
``street.jpg,car;person``); an empty ``labels`` cell is an image with none of the classes.

The layout of the multi-label lesson of fast.ai (the planet and Pascal VOC label CSVs).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.data.records import Record
from pipeline.data.sources.common import csv_rows, image_record, orphan_images, unnamed_row

TASK = "multilabel"
LAYOUT = ("images/ with the pictures and labels.csv with the header filename,labels (labels separated by "
          "data.label_separator, a space by default)")
COLUMNS = ("filename", "labels")
SEPARATORS = (" ", ";", ",", "|")  # the ones seen in label files; a label holding one is refused


def split_labels(cell: str, separator: str, where: str) -> list[str]:
    """The labels of one cell: split on ``separator`` (a space: any run of whitespace)."""
    labels = cell.split() if separator == " " else [s.strip() for s in cell.split(separator) if s.strip()]
    for label in labels:
        other = next((s for s in SEPARATORS if s != separator and s in label), None)
        if other is not None:
            shown = "a space" if separator == " " else repr(separator)
            raise ValueError(f"{where}: label {label!r} holds {other!r} while labels are separated by {shown}; "
                             f"if {other!r} separates the labels, set data.label_separator={other!r}")
    return sorted(set(labels))


def read(cfg, root: Path) -> tuple[list[Record], list[str] | None]:
    images_dir = root / cfg.images_dir
    ann_name = cfg.annotation_file
    records: dict[str, Record] = {}
    for n, row in csv_rows(root / ann_name, COLUMNS, LAYOUT):
        name = (row["filename"] or "").strip()
        if not name:
            record = unnamed_row(ann_name, n)
            records[record.key] = record
            continue
        record = image_record(root, images_dir, name, ann_name)
        if record.key in records:
            records[record.key].problem = ("bad_annotation", f"{ann_name} line {n}: {name} is listed twice; "
                                           "give each image one row with all its labels")
            continue
        record.labels = split_labels(row["labels"] or "", cfg.label_separator, f"{root / ann_name} line {n}")
        records[record.key] = record
    found = list(records.values())
    found += orphan_images(root, images_dir, [r.image for r in found if r.image], f"not listed in {ann_name}",
                           cfg.allow_unannotated)
    return found, None
