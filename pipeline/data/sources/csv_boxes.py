"""CSV boxes: ``filename,width,height,class,xmin,ymin,xmax,ymax`` (detection).

The layout of the TensorFlow object-detection tutorials; one row per box, the
corners in absolute pixels, read as given.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.data.records import Record
from pipeline.data.sources.common import csv_rows, image_record, orphan_images, unnamed_row

TASK = "detection"
LAYOUT = "images/ with the pictures and annotations.csv with filename,width,height,class,xmin,ymin,xmax,ymax"
COLUMNS = ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax")


def read(cfg, root: Path) -> tuple[list[Record], list[str] | None]:
    images_dir = root / cfg.images_dir
    ann_name = cfg.annotation_file
    by_name: dict[str, Record] = {}
    for n, row in csv_rows(root / ann_name, COLUMNS, LAYOUT):
        name = (row["filename"] or "").strip()
        if not name:
            record = unnamed_row(ann_name, n)
            by_name[record.key] = record
            continue
        record = by_name.get(name)
        if record is None:
            record = by_name[name] = image_record(root, images_dir, name, ann_name)
        try:
            size = (int(float(row["width"])), int(float(row["height"])))
            box = [float(row[c]) for c in ("xmin", "ymin", "xmax", "ymax")]
        except (TypeError, ValueError):
            record.problem = record.problem or ("bad_annotation", f"{ann_name} line {n}: non-numeric size or corner")
            continue
        label = (row["class"] or "").strip()
        if not label:
            record.problem = record.problem or ("bad_annotation", f"{ann_name} line {n}: empty class; name the "
                                                "object's class or delete the row")
            continue
        declared = size if min(size) > 0 else None
        if record.boxes and declared != record.declared_size:  # rows of one image that disagree on its size
            record.problem = record.problem or ("bad_annotation", f"{ann_name} line {n}: {name} is declared "
                                                f"{size[0]}x{size[1]} here but {record.declared_size} on an earlier "
                                                "row; give every row of an image the same width and height")
            continue
        record.declared_size = declared
        record.boxes.append(box)
        record.box_classes.append(label)
    records = list(by_name.values())
    records += orphan_images(root, images_dir, [r.image for r in records if r.image],
                             f"not listed in {ann_name}", cfg.allow_unannotated)
    return records, None
