"""Helpers shared by the importers: safe paths, image listing, orphan detection."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Iterable, Iterator

from pipeline.data.records import Record
from pipeline.io.images import is_image_file


def relkey(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted; hidden files skipped."""
    if not folder.is_dir():
        return []
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / f for f in filenames if not f.startswith(".") and is_image_file(Path(f))]
    return sorted(found)


def resolve_inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` if the name stays inside ``root``, else None (path traversal).

    The check is on the name itself (``..`` parts, absolute paths), not on resolved paths, so
    a dataset whose folders are symlinks to another disk keeps working.
    """
    if not relative or os.path.isabs(relative):
        return None
    normal = os.path.normpath(relative)
    if normal == os.pardir or normal.startswith(os.pardir + os.sep):
        return None
    return root / normal


def image_record(root: Path, images_dir: Path, name: str, annotation: str) -> Record:
    """A record for the image an annotation names, with the problem set if unusable."""
    path = resolve_inside(images_dir, name)
    if path is None:
        key = f"{annotation}:{name}"
        return Record(key=key, annotation=annotation, problem=(
            "path_traversal",
            f"{annotation}: image name {name!r} escapes the dataset folder {images_dir}; "
            "annotations may only name files inside it",
        ))
    key = relkey(path, root)
    if not path.is_file():
        return Record(key=key, annotation=annotation, problem=(
            "annotation_without_image",
            f"{annotation}: names image {name!r} but {path} does not exist; add the image or "
            "delete the annotation",
        ))
    return Record(key=key, image=path, annotation=annotation)


def orphan_images(root: Path, images_dir: Path, referenced: Iterable[Path], expected: str,
                  allow_unannotated: bool) -> list[Record]:
    """Images nobody annotated: background images if allowed, else rejected."""
    seen = {p.resolve() for p in referenced}
    records = []
    for path in list_images(images_dir):
        if path.resolve() in seen:
            continue
        record = Record(key=relkey(path, root), image=path)
        if not allow_unannotated:
            record.problem = (
                "image_without_annotation",
                f"{path}: no annotation found ({expected}); annotate it, remove it, or set "
                "data.allow_unannotated=true to keep it as a background image",
            )
        records.append(record)
    return records


def read_paired(cfg, root: Path, images_dir: Path, labels_dir: Path, parse_label) -> list[Record]:
    """Pair ``images_dir/<stem>.*`` with ``labels_dir/<stem>.txt`` (KITTI and YOLO layouts)."""
    records, used_labels = [], set()
    for image in list_images(images_dir):
        rel = image.relative_to(images_dir).with_suffix(".txt")
        label = labels_dir / rel
        record = Record(key=relkey(image, root), image=image)
        if label.is_file():
            used_labels.add(label.resolve())
            parse_label(label, record, root)
        elif not cfg.allow_unannotated:
            record.problem = (
                "image_without_annotation",
                f"{image}: no label file {relkey(label, root)}; annotate it, remove it, or set "
                "data.allow_unannotated=true to keep it as a background image",
            )
        records.append(record)
    for label in sorted(labels_dir.rglob("*.txt")) if labels_dir.is_dir() else []:
        if label.resolve() not in used_labels:
            key = relkey(label, root)
            records.append(Record(key=key, annotation=key, problem=(
                "annotation_without_image",
                f"{key}: label file has no image of the same name in {images_dir.name}/; "
                "add the image or delete the label file",
            )))
    return records


def csv_rows(path: Path, columns: tuple[str, ...], layout: str) -> Iterator[tuple[int, dict]]:
    """(line number, row) of a CSV annotation file whose header must hold ``columns``. A UTF-8
    byte-order mark (spreadsheet tools write one) is not part of the first column's name."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: annotation file not found; expected {layout}")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}; expected the header {','.join(columns)}")
        yield from enumerate(reader, start=2)


def unnamed_row(annotation: str, line: int) -> Record:
    """The quarantine record of a CSV row whose filename cell is empty."""
    key = f"{annotation}:line {line}"
    return Record(key=key, annotation=annotation, problem=(
        "bad_annotation", f"{annotation} line {line}: empty filename; name the image or delete the row"))


SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
SPLIT_SOURCES = ("auto", "given", "stratified")


def folders_of(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def split_folders(root: Path, inner: str | None = None) -> list[Path]:
    """The split folders when the top level is train/ and val/ (and test/), each holding ``inner``
    when given (DIGITS: train/images), else none."""
    top = [p for p in folders_of(root) if inner is None or (p / inner).is_dir()]
    names = {SPLIT_NAMES.get(p.name) for p in top}
    return top if top and None not in names and "train" in names else []


def split_of_first_folder(root: Path, splits: list[Path], records: list[Record]):
    """(key -> split named by the key's first folder, where), or (None, where) without split folders."""
    if not splits:
        return None, f"{root} (no train/ and val/ folders)"
    return ({r.key: SPLIT_NAMES[Path(r.key).parts[0]] for r in records if Path(r.key).parts[0] in SPLIT_NAMES},
            f"{root}/{{{','.join(p.name for p in splits)}}}/")


def apply_given_split(records: list[Record], given: dict[str, str] | None, source: str, where: str) -> str:
    """Put each record in the split the dataset gives it (``given``: record key -> split), as
    ``data.split.source`` says: ``auto`` when the dataset has a split, ``given`` always (an error
    when it has none), ``stratified`` never. A record the given split leaves out is rejected with
    its reason: nothing moves between the dataset's splits. Returns the split used."""
    if source not in SPLIT_SOURCES:
        raise ValueError(f"data.split.source: {source!r} is not one of {', '.join(SPLIT_SOURCES)}")
    if source == "stratified" or (given is None and source == "auto"):
        return "stratified"
    if given is None:
        raise ValueError(f"data.split.source=given: {where} has no split of its own; set data.split.source=auto "
                         "or stratified")
    for record in records:
        if record.problem is None and record.split is None:
            record.split = given.get(record.key)
            if record.split is None:
                record.problem = ("not_in_given_split", f"{record.key}: not in the dataset's own split ({where}); "
                                  "list it there, or set data.split.source=stratified")
    return "given"
