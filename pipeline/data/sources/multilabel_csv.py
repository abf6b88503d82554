"""Multi-label CSV: ``filename,labels`` with the classes of each image separated by spaces
(``street.jpg,car person bicycle``); an empty ``labels`` cell is an image with none of the classes.

The layout of the multi-label lesson of fast.ai (the planet and Pascal VOC label CSVs).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.data.records import Record
from pipeline.data.sources.common import csv_rows, image_record, orphan_images, unnamed_row

TASK = "multilabel"
LAYOUT = "images/ with the pictures and labels.csv with the header filename,labels (labels separated by spaces)"
COLUMNS = ("filename", "labels")


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
        record.labels = sorted(set((row["labels"] or "").split()))
        records[record.key] = record
    found = list(records.values())
    found += orphan_images(root, images_dir, [r.image for r in found if r.image], f"not listed in {ann_name}",
                           cfg.allow_unannotated)
    return found, None
