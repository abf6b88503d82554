"""Pascal VOC: ``annotations/*.xml`` next to ``images/`` (detection).

VOC corners are 1-based inclusive pixel indices; in the pipeline's continuous
coordinates that is ``[xmin - 1, ymin - 1, xmax, ymax]`` (as detectron2 reads them).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from pipeline.data.records import Record
from pipeline.data.sources.common import image_record, orphan_images, relkey
from pipeline.io.images import is_image_file

TASK = "detection"
LAYOUT = "images/ with the pictures and annotations/ with one Pascal VOC .xml per image"


def _number(node, tag: str) -> float:
    text = node.findtext(tag)
    if text is None:
        raise ValueError(f"missing <{tag}>")
    return float(text)


def same_stem_image(xml_path: Path, images_dir: Path) -> Path | None:
    """The one image named like the annotation file (VOC pairs them by name), if there is one."""
    found = [p for p in images_dir.glob(f"{xml_path.stem}.*") if is_image_file(p)] if images_dir.is_dir() else []
    return found[0] if len(found) == 1 else None


def parse(xml_path: Path, root: Path, images_dir: Path) -> Record:
    annotation = relkey(xml_path, root)
    paired = same_stem_image(xml_path, images_dir)
    try:
        tree = ET.parse(xml_path).getroot()
    except ET.ParseError as exc:  # the image it annotates gets the reason (not "no annotation found")
        key = relkey(paired, root) if paired else annotation
        return Record(key=key, image=paired, annotation=annotation,
                      problem=("bad_annotation", f"{annotation}: not well-formed XML ({exc}); fix the file"))
    name = (tree.findtext("filename") or "").strip()
    record = image_record(root, images_dir, name, annotation)
    if record.problem and record.problem[0] == "annotation_without_image" and paired is not None:
        record = Record(key=relkey(paired, root), image=paired, annotation=annotation,
                        warnings=[f"{annotation}: <filename> {name!r} names no image; paired with "
                                  f"{relkey(paired, root)} by the annotation's own name"])
    size = tree.find("size")
    if size is not None:
        try:
            w, h = int(_number(size, "width")), int(_number(size, "height"))
            record.declared_size = (w, h) if w > 0 and h > 0 else None
        except ValueError:
            pass
    for i, obj in enumerate(tree.iter("object")):
        box = obj.find("bndbox")
        try:
            if box is None:
                raise ValueError("missing <bndbox>")
            coords = [_number(box, t) for t in ("xmin", "ymin", "xmax", "ymax")]
        except ValueError as exc:
            record.problem = record.problem or ("bad_annotation", f"{annotation}: object {i}: {exc}")
            continue
        record.boxes.append([coords[0] - 1, coords[1] - 1, coords[2], coords[3]])
        record.box_classes.append((obj.findtext("name") or "").strip())
    return record


def read(cfg, root: Path) -> tuple[list[Record], list[str] | None]:
    images_dir = root / cfg.images_dir
    annotations_dir = root / cfg.annotations_dir
    records = [parse(p, root, images_dir) for p in sorted(annotations_dir.glob("*.xml"))]
    records += orphan_images(root, images_dir, [r.image for r in records if r.image],
                             f"expected {annotations_dir.name}/<name>.xml",
                             cfg.allow_unannotated)
    return records, None


def given_split(cfg, root: Path, records: list[Record]) -> tuple[dict[str, str] | None, str]:
    """Pascal VOC's own split: ``ImageSets/Main/{train,val,test}.txt``, one image name (no
    extension) per line. (key -> split, where it was read)."""
    folder = root / "ImageSets" / "Main"
    lists = {name: folder / f"{name}.txt" for name in ("train", "val", "test") if (folder / f"{name}.txt").is_file()}
    if not lists:
        return None, str(folder)
    split_of = {}
    for name, path in lists.items():
        for stem in path.read_text(encoding="utf-8").split():
            if split_of.setdefault(stem, name) != name:
                raise ValueError(f"{path}: {stem} is also in {split_of[stem]}.txt; an image belongs to one split")
    by_stem = {Path(r.key).stem: r.key for r in records}
    return {by_stem[stem]: name for stem, name in split_of.items() if stem in by_stem}, str(folder)
