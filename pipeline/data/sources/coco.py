"""COCO JSON: one annotation file with images, annotations and categories (detection).

COCO boxes are ``[x, y, width, height]`` in absolute pixels. Class ids follow the
order of the categories sorted by their COCO id. An annotation without ``bbox`` takes the extent
of its polygon segmentation; crowd regions (``iscrowd: 1``) are ignored and counted; images that
share one id are rejected with that id, an image file listed under several ids with those ids.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.boxes import xywh_to_xyxy
from pipeline.data.manifest import SPLITS
from pipeline.data.records import Record
from pipeline.data.sources.common import image_record, orphan_images

TASK = "detection"
LAYOUT = "images/ with the pictures and annotations.json in COCO format (or one file per split: data.split_files)"


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


def read_file(root: Path, images_dir: Path, ann_name: str) -> tuple[list[Record], dict[int, str]]:
    """The records of one COCO annotation file (its images found in ``images_dir``) and its
    categories (id -> name)."""
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
    return without_files_listed_twice(records, by_image, ann_name), categories


def without_files_listed_twice(records: list[Record], by_image: dict[int, Record], ann_name: str) -> list[Record]:
    """One image file under several ids: its annotations are split between them, and keeping one id's
    would drop the other's objects as if they were background. The file is rejected once, naming
    the ids."""
    ids_of: dict[str, list[int]] = {}
    for image_id, record in by_image.items():
        ids_of.setdefault(record.key, []).append(image_id)
    dropped = set()
    for key, ids in ids_of.items():
        if len(ids) > 1:
            by_image[ids[0]].problem = ("bad_annotation", f"{ann_name}: {key} is listed under image ids "
                                        f"{', '.join(map(str, ids))}; list it once, with all its annotations "
                                        "under that id")
            dropped.update(id(by_image[i]) for i in ids[1:])
    return [r for r in records if id(r) not in dropped]


def annotation_files(cfg) -> dict[str | None, tuple[str, str]]:
    """split (None: the dataset's one file) -> (annotation file, images folder)."""
    if not cfg.get("split_files"):
        return {None: (cfg.annotation_file, cfg.images_dir)}
    unknown = sorted(set(cfg.split_files) - set(SPLITS))
    if unknown:
        raise ValueError(f"data.split_files: {', '.join(unknown)} is not a split; use {', '.join(SPLITS)}")
    return {split: (f.annotation_file, f.images_dir) for split, f in cfg.split_files.items()}


def read(cfg, root: Path) -> tuple[list[Record], list[str] | None]:
    records, categories, folders = [], {}, {}
    for ann_name, images_dir in annotation_files(cfg).values():
        found, named = read_file(root, root / images_dir, ann_name)
        for category, name in named.items():
            if categories.setdefault(category, name) != name:
                raise ValueError(f"{root / ann_name}: category id {category} is {name!r}, but "
                                 f"{categories[category]!r} in another split's file; give the files one category list")
        records += found
        folders.setdefault(root / images_dir, []).append(ann_name)
    listed = [r.image for r in records if r.image]
    for images_dir, names in folders.items():  # images no file lists
        records += orphan_images(root, images_dir, listed, f"not listed in {' or '.join(names)}", cfg.allow_unannotated)
    return records, [categories[k] for k in sorted(categories)]


def given_split(cfg, root: Path, records: list[Record]) -> tuple[dict[str, str] | None, str]:
    """The split of ``data.split_files``: each record in the split of the file that lists it."""
    files = annotation_files(cfg)
    if None in files:
        return None, "data.split_files (not set)"
    split_of_file = {ann_name: split for split, (ann_name, _) in files.items()}
    given: dict[str, str] = {}
    for record in records:
        split = split_of_file.get(record.annotation or "")
        if split is not None and given.setdefault(record.key, split) != split:
            raise ValueError(f"{record.key} is listed in the {given[record.key]} and the {split} annotation files; "
                             "an image belongs to one split")
    return given, "data.split_files"
