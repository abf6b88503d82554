"""KITTI object labels as DIGITS reads them: ``images/x.png`` + ``labels/x.txt`` (detection).

Each label line: ``type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y [score]``,
corners in absolute pixels. ``DontCare`` regions are not objects: they are skipped and
counted in the stats as ignored annotations.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.data.records import Record
from pipeline.data.sources.common import read_paired, relkey, split_folders, split_of_first_folder

TASK = "detection"
LAYOUT = "images/ with the pictures and labels/ with one KITTI .txt per image (same name)"


def parse(label_path: Path, record: Record, root: Path) -> None:
    annotation = relkey(label_path, root)
    record.annotation = annotation
    for n, line in enumerate(label_path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) not in (15, 16):
            record.problem = ("bad_annotation", f"{annotation} line {n}: expected 15 or 16 fields, got {len(fields)}")
            return
        if fields[0].lower() == "dontcare":
            record.ignored_annotations += 1
            continue
        try:
            record.boxes.append([float(v) for v in fields[4:8]])
        except ValueError:
            record.problem = ("bad_annotation", f"{annotation} line {n}: box corners are not numbers")
            return
        record.box_classes.append(fields[0])


def read(cfg, root: Path) -> tuple[list[Record], list[str] | None]:
    """``images_dir``/``labels_dir`` under the root, or under each of its split folders (DIGITS:
    train/images, train/labels, val/images, val/labels)."""
    parents = split_folders(root, cfg.images_dir) or [root]
    return [r for parent in parents for r in read_paired(cfg, root, parent / cfg.images_dir,
                                                          parent / cfg.labels_dir, parse)], None


def given_split(cfg, root: Path, records: list[Record]) -> tuple[dict[str, str] | None, str]:
    """The split of DIGITS' train/ and val/ folders: a record's first folder names it."""
    return split_of_first_folder(root, split_folders(root, cfg.images_dir), records)
