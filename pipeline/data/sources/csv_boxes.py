"""CSV boxes: ``filename,width,height,class,xmin,ymin,xmax,ymax`` (detection).

The layout of the TensorFlow object-detection tutorials; one row per box, the
corners in absolute pixels, read as given.
"""

from __future__ import annotations

import csv
from pathlib import Path

from pipeline.data.records import Record
from pipeline.data.sources.common import image_record, orphan_images

TASK = "detection"
LAYOUT = "images/ with the pictures and annotations.csv with filename,width,height,class,xmin,ymin,xmax,ymax"
COLUMNS = ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax")


def read(cfg, root: Path) -> tuple[list[Record], list[str] | None]:
    images_dir = root / cfg.images_dir
    ann_name = cfg.annotation_file
    ann_path = root / ann_name
    if not ann_path.is_file():
        raise FileNotFoundError(f"{ann_path}: CSV annotation file not found; expected {LAYOUT}")
    by_name: dict[str, Record] = {}
    with ann_path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{ann_path}: missing columns {missing}; expected header {','.join(COLUMNS)}")
        for n, row in enumerate(reader, start=2):
            name = row["filename"].strip()
            record = by_name.get(name)
            if record is None:
                record = by_name[name] = image_record(root, images_dir, name, ann_name)
            try:
                size = (int(float(row["width"])), int(float(row["height"])))
                box = [float(row[c]) for c in ("xmin", "ymin", "xmax", "ymax")]
            except (TypeError, ValueError):
                record.problem = record.problem or ("bad_annotation",
                                                    f"{ann_name} line {n}: non-numeric size or corner")
                continue
            record.declared_size = size if min(size) > 0 else None
            record.boxes.append(box)
            record.box_classes.append(row["class"].strip())
    records = list(by_name.values())
    records += orphan_images(root, images_dir, [r.image for r in records if r.image],
                             f"not listed in {ann_name}", cfg.allow_unannotated)
    return records, None
