"""COCO JSON: one annotation file with images, annotations and categories (detection).

COCO boxes are ``[x, y, width, height]`` in absolute pixels. Class ids follow the
order of the categories sorted by their COCO id. An annotation without ``bbox`` takes the extent
of its polygon segmentation; crowd regions (``iscrowd: 1``) are ignored and counted; images that
share one id are rejected with that id.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.boxes import xywh_to_xyxy
from pipeline.data.records import Record
from pipeline.data.sources.common import image_record, orphan_images

TASK = "detection"
LAYOUT = "images/ with the pictures and annotations.json in COCO format"


def annotation_box(ann: dict) -> list[float] | None:
    """The annotation's box (xyxy): its ``bbox``, else the extent of its polygon segmentation
    (COCO files from segmentation tools may carry no bbox), else None."""
    if ann.get("bbox") is not None:
        return xywh_to_xyxy(ann["bbox"])[0].tolist()
    polygons = ann.get("segmentation")
    if isinstance(polygons, list) and polygons and all(isinstance(p, list) and len(p) >= 6 for p in polygons):
        xs = [float(v) for p in polygons for v in p[0::2]]
        ys = [float(v) for p in polygons for v in p[1::2]]
        return [min(xs), min(ys), max(xs), max(ys)]
    return None


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
    duplicated: dict[int, list[Record]] = {}
    for image in images:
        record = image_record(root, images_dir, str(image.get("file_name", "")), ann_name)
        if image.get("width") and image.get("height"):
            record.declared_size = (int(image["width"]), int(image["height"]))
        image_id = int(image["id"])
        if image_id in by_image:
            duplicated.setdefault(image_id, [by_image[image_id]]).append(record)
        by_image.setdefault(image_id, record)
    records = list(by_image.values()) + [r for group in duplicated.values() for r in group[1:]]
    for image_id, group in duplicated.items():  # which image its annotations belong to cannot be told
        names = ", ".join(r.key for r in group)
        for record in group:
            record.problem = ("bad_annotation", f"{ann_name}: image id {image_id} is given to {len(group)} images "
                              f"({names}); give each image its own id")
    for ann in annotations:
        record = by_image.get(int(ann.get("image_id", -1)))
        if record is None:
            records.append(Record(key=f"{ann_name}#annotation-{ann.get('id')}", annotation=ann_name, problem=(
                "annotation_without_image",
                f"{ann_name}: annotation {ann.get('id')} refers to image id {ann.get('image_id')} "
                "which is not in 'images'",
            )))
            continue
        if ann.get("iscrowd"):  # a crowd region: ignored, as COCO's own evaluation does, and counted
            record.ignored_annotations += 1
            continue
        box = annotation_box(ann)
        if box is None:
            record.problem = record.problem or ("bad_annotation", f"{ann_name}: annotation {ann.get('id')} of image "
                                                f"id {ann.get('image_id')} has neither a bbox nor a polygon "
                                                "segmentation; add its bbox or delete it")
            continue
        category = int(ann.get("category_id", -1))
        record.boxes.append(box)
        record.box_classes.append(categories.get(category, f"<category id {category}>"))
    records += orphan_images(root, images_dir, [r.image for r in records if r.image],
                             f"not listed in {ann_name}", cfg.allow_unannotated)
    return records, [categories[k] for k in sorted(categories)]
