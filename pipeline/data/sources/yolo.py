"""YOLO: ``images/x.jpg`` + ``labels/x.txt`` + a class-names file (detection).

Label lines are ``class_id cx cy w h``, normalised to the image size. Class names
come from a text file with one name per line (``classes.txt``, ``obj.names``) or a
``data.yaml`` with a ``names`` list or mapping.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.data.records import Record
from pipeline.data.sources.common import SPLIT_NAMES, read_paired, relkey

TASK = "detection"
LAYOUT = "images/, labels/ with one YOLO .txt per image, and classes.txt (or data.yaml) naming the classes"


def read_names(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: YOLO class-names file not found; set data.names_file or add it")
    if path.suffix in (".yaml", ".yml"):
        names = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("names")
        if isinstance(names, dict):
            return [str(names[k]) for k in sorted(names, key=int)]
        if isinstance(names, list):
            return [str(n) for n in names]
        raise ValueError(f"{path}: expected a 'names' list or mapping")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def parser(names: list[str]):
    def parse(label_path: Path, record: Record, root: Path) -> None:
        annotation = relkey(label_path, root)
        record.annotation = annotation
        record.normalized_boxes = True
        for n, line in enumerate(label_path.read_text(encoding="utf-8").splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            try:
                if len(fields) != 5:
                    raise ValueError(f"expected 5 fields, got {len(fields)}")
                class_id, values = int(fields[0]), [float(v) for v in fields[1:]]
            except ValueError as exc:
                record.problem = ("bad_annotation", f"{annotation} line {n}: {exc}")
                return
            record.boxes.append(values)
            record.box_classes.append(names[class_id] if 0 <= class_id < len(names) else f"<class id {class_id}>")
    return parse


def read(cfg, root: Path) -> tuple[list[Record], list[str] | None]:
    names = read_names(root / cfg.names_file)
    images_dir = root / cfg.images_dir
    labels_dir = root / cfg.labels_dir
    return read_paired(cfg, root, images_dir, labels_dir, parser(names)), names


def given_split(cfg, root: Path, records: list[Record]) -> tuple[dict[str, str] | None, str]:
    """The split of a ``data.yaml`` (Ultralytics): ``train``, ``val`` and ``test`` each name image
    folders or list files (one image path per line), relative to its ``path`` or to the dataset."""
    config = root / "data.yaml"
    if not config.is_file():
        return None, str(config)
    spec = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    base = root / str(spec.get("path") or ".")
    split_of: dict[Path, str] = {}
    for key, name in SPLIT_NAMES.items():
        entries = spec.get(key) or []
        for entry in [entries] if isinstance(entries, str) else entries:
            where = (base / str(entry)).resolve()
            if where.is_dir():
                images = [p.resolve() for p in where.rglob("*") if p.is_file()]
            elif where.is_file():
                images = [(base / line.strip()).resolve() for line in where.read_text(encoding="utf-8").splitlines()
                          if line.strip()]
            else:
                raise FileNotFoundError(f"{config}: {key}: {entry} is neither a folder nor a list file")
            for image in images:
                split_of[image] = name
    if not split_of:
        return None, str(config)
    found = {r.key: split_of[r.image.resolve()] for r in records if r.image and r.image.resolve() in split_of}
    return found, str(config)
