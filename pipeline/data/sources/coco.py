"""COCO JSON: one annotation file with images, annotations and categories (detection).

COCO boxes are ``[x, y, width, height]`` in absolute pixels. Class ids follow the
order of the categories sorted by their COCO id.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.boxes import xywh_to_xyxy
from pipeline.data.records import Record
from pipeline.data.sources.common import image_record, orphan_images

TASK = "detection"
LAYOUT = "images/ with the pictures and annotations.json in COCO format"


def read(cfg, root: Path) -> tuple[list[Record], list[str] | None]:
    images_dir = root / cfg.images_dir
    ann_name = cfg.annotation_file
    ann_path = root / ann_name
    try:
        data = json.loads(ann_path.read_text(encoding="utf-8"))
        categories = {int(c["id"]): str(c["name"]) for c in data["categories"]}
        images = data["images"]
        annotations = data.get("annotations", [])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{ann_path}: cannot read COCO annotations ({exc}); expected {LAYOUT}") from exc
    by_image: dict[int, Record] = {}
    for image in images:
        record = image_record(root, images_dir, str(image.get("file_name", "")), ann_name)
        if image.get("width") and image.get("height"):
            record.declared_size = (int(image["width"]), int(image["height"]))
        by_image[int(image["id"])] = record
    records = list(by_image.values())
    for ann in annotations:
        record = by_image.get(int(ann.get("image_id", -1)))
        if record is None:
            records.append(Record(key=f"{ann_name}#annotation-{ann.get('id')}", annotation=ann_name, problem=(
                "annotation_without_image",
                f"{ann_name}: annotation {ann.get('id')} refers to image id {ann.get('image_id')} "
                "which is not in 'images'",
            )))
            continue
        category = int(ann.get("category_id", -1))
        record.boxes.append(xywh_to_xyxy(ann["bbox"])[0].tolist())
        record.box_classes.append(categories.get(category, f"<category id {category}>"))
    records += orphan_images(root, images_dir, [r.image for r in records if r.image],
                             f"not listed in {ann_name}", cfg.allow_unannotated)
    return records, [categories[k] for k in sorted(categories)]
