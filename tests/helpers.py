"""Test helpers: make images and write datasets in each supported annotation format."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from PIL import Image

from pipeline.boxes import xyxy_to_cxcywh_norm, xyxy_to_xywh
from pipeline.config import CONF_DIR, compose
from pipeline.data.manifest import Manifest
from pipeline.data.prepare import prepare
from pipeline.detect.settings import DetectorModel, DetectorTrain
from pipeline.schema import ClassifierModel


def data_config(**overrides):
    """The data section of conf/data/<format>.yaml (the shared policy for a format with no preset)
    with ``overrides`` (``format`` among them) merged in."""
    preset = CONF_DIR / "data" / f"{overrides['format']}.yaml"
    base = compose([f"data={preset.stem}"]).data if preset.is_file() else OmegaConf.load(CONF_DIR / "data/_common.yaml")
    return OmegaConf.merge(base, OmegaConf.create(overrides))


def classifier_model(name: str, pretrained: str, **overrides) -> ClassifierModel:
    """The `model.classifier` settings of conf/model/classifier/ for network ``name``."""
    return ClassifierModel.of(OmegaConf.merge(compose().model.classifier,
                                              {"name": name, "pretrained": pretrained, **overrides}))


def detector_model(**overrides) -> DetectorModel:
    """The `model.detector` settings of conf/model/detector/ with ``overrides`` (nested: dicts)."""
    return DetectorModel.of(OmegaConf.merge(compose().model.detector, overrides))


def detector_training(**overrides) -> DetectorTrain:
    """The `train.detector` settings of conf/train/detector/ with ``overrides`` (nested: dicts)."""
    return DetectorTrain.of(OmegaConf.merge(compose().train.detector, overrides))


def noise_image(width: int, height: int, seed: int) -> np.ndarray:
    """A distinct RGB image per seed (so content hashes never collide by accident)."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def write_image(path: Path, pixels: np.ndarray, fmt: str | None = None, **save_kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format=fmt, **save_kwargs)
    return path


@dataclass
class Truth:
    """One annotated image of a test dataset, in the pipeline's own convention."""

    name: str
    width: int
    height: int
    boxes: list = field(default_factory=list)  # xyxy absolute
    classes: list = field(default_factory=list)


def make_truths(n: int = 6, classes=("cat", "dog", "bird"), seed: int = 0) -> list[Truth]:
    rng = np.random.default_rng(seed)
    truths = []
    for i in range(n):
        w, h = int(rng.integers(60, 120)), int(rng.integers(50, 100))
        boxes, names = [], []
        for _ in range(int(rng.integers(1, 4))):
            x1, y1 = float(rng.integers(0, w // 2)), float(rng.integers(0, h // 2))
            x2, y2 = float(rng.integers(x1 + 5, w + 1)), float(rng.integers(y1 + 5, h + 1))
            boxes.append([x1, y1, x2, y2])
            names.append(classes[int(rng.integers(len(classes)))])
        truths.append(Truth(f"img_{i:02d}.png", w, h, boxes, names))
    return truths


def write_images(root: Path, truths: list[Truth], folder: str = "images") -> None:
    for i, t in enumerate(truths):
        write_image(root / folder / t.name, noise_image(t.width, t.height, 1000 + i))


def write_voc(root: Path, truths: list[Truth]) -> None:
    write_images(root, truths)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for t in truths:
        objects = "".join(
            f"<object><name>{c}</name><bndbox><xmin>{b[0] + 1:g}</xmin><ymin>{b[1] + 1:g}</ymin>"
            f"<xmax>{b[2]:g}</xmax><ymax>{b[3]:g}</ymax></bndbox></object>"
            for b, c in zip(t.boxes, t.classes))
        xml = (f"<annotation><filename>{t.name}</filename><size><width>{t.width}</width>"
               f"<height>{t.height}</height><depth>3</depth></size>{objects}</annotation>")
        (root / "annotations" / f"{Path(t.name).stem}.xml").write_text(xml)


def write_coco(root: Path, truths: list[Truth], categories=("cat", "dog", "bird")) -> None:
    write_images(root, truths)
    cat_ids = {name: 10 + i for i, name in enumerate(categories)}  # non-contiguous ids on purpose
    images, annotations = [], []
    for i, t in enumerate(truths):
        images.append({"id": i + 1, "file_name": t.name, "width": t.width, "height": t.height})
        for b, c in zip(t.boxes, t.classes):
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": cat_ids[c],
                                "bbox": xyxy_to_xywh([b])[0].tolist(), "iscrowd": 0,
                                "area": (b[2] - b[0]) * (b[3] - b[1])})
    cats = [{"id": v, "name": k} for k, v in cat_ids.items()]
    (root / "annotations.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                                       "categories": cats}))


def write_kitti(root: Path, truths: list[Truth]) -> None:
    write_images(root, truths)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for t in truths:
        lines = [f"{c} 0.0 0 0.0 {b[0]:.2f} {b[1]:.2f} {b[2]:.2f} {b[3]:.2f} 0.0 0.0 0.0 0.0 0.0 0.0 0.0"
                 for b, c in zip(t.boxes, t.classes)]
        lines.append("DontCare -1 -1 -10 1.00 1.00 4.00 4.00 -1 -1 -1 -1000 -1000 -1000 -10")
        (root / "labels" / f"{Path(t.name).stem}.txt").write_text("\n".join(lines) + "\n")


def write_yolo(root: Path, truths: list[Truth], names=("cat", "dog", "bird")) -> None:
    write_images(root, truths)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(names) + "\n")
    for t in truths:
        rows = xyxy_to_cxcywh_norm(t.boxes, t.width, t.height)
        lines = [f"{names.index(c)} " + " ".join(f"{v:.8f}" for v in row) for row, c in zip(rows, t.classes)]
        (root / "labels" / f"{Path(t.name).stem}.txt").write_text("\n".join(lines) + "\n")


def write_csv(root: Path, truths: list[Truth]) -> None:
    write_images(root, truths)
    with (root / "annotations.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax"])
        for t in truths:
            for b, c in zip(t.boxes, t.classes):
                writer.writerow([t.name, t.width, t.height, c, *b])


def write_folders(root: Path, labels: dict[str, int], seed: int = 0, size: tuple[int, int] = (40, 30)) -> None:
    """``labels[class] = number of images`` of ``size`` (width, height) in root/<class>/."""
    k = 0
    for name, count in labels.items():
        for i in range(count):
            k += 1
            write_image(root / name / f"{i:03d}.jpg", noise_image(*size, seed * 1000 + k), quality=95)


WRITERS = {"voc": write_voc, "coco": write_coco, "kitti": write_kitti, "yolo": write_yolo, "csv": write_csv}


# A VOC dataset built sample by sample, for the validation and bad-input tests.
def voc_xml(name: str, size, boxes, classes=None) -> str:
    classes = classes or ["cat"] * len(boxes)
    objects = "".join(f"<object><name>{c}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
                      f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for b, c in zip(boxes, classes))
    return (f"<annotation><filename>{name}</filename><size><width>{size[0]}</width><height>{size[1]}</height>"
            f"</size>{objects}</annotation>")


def add(root: Path, name: str, pixels=None, boxes=((11, 11, 30, 30),), classes=None, size=None, **save):
    """An image (unless pixels is None) plus its VOC annotation (1-based corners)."""
    if pixels is not None:
        write_image(root / "images" / name, pixels, **save)
        size = size or (pixels.shape[1], pixels.shape[0])
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"{Path(name).stem}.xml").write_text(voc_xml(name, size or (64, 48), boxes, classes))


def prepare_voc(tmp_path: Path, root: Path, fmt: str = "voc", **policy):
    """prepare's (stats, manifest, {item: rejection}) for ``root``."""
    cfg = data_config(format=fmt, root=str(root), **policy)
    stats = prepare(cfg, 0, tmp_path / "out", tmp_path / "reports", tmp_path / "metrics.json")
    rejected = {r["item"]: r for r in json.loads((tmp_path / "out" / "rejected.json").read_text())}
    return stats, Manifest.read(tmp_path / "out" / "manifest.json"), rejected
