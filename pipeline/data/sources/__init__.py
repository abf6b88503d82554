"""Importers, one module per source format, each turning a folder into :class:`Record` s.

Every module has ``TASK`` ("detection" or "classification"), ``LAYOUT`` (the expected
folder layout, quoted in error messages) and ``read(cfg, root) -> (records, classes)``
where ``classes`` is the class list the source declares, or None to discover it.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.data.sources import coco, csv_boxes, folders, kitti, multilabel_csv, synthetic, voc, yolo

SOURCES = {
    "synthetic": synthetic,
    "folders": folders,
    "voc": voc,
    "coco": coco,
    "kitti": kitti,
    "yolo": yolo,
    "csv": csv_boxes,
    "multilabel_csv": multilabel_csv,
}


def get_source(fmt: str):
    try:
        return SOURCES[fmt]
    except KeyError:
        raise ValueError(f"data.format={fmt!r} is not a known source; choose one of {sorted(SOURCES)}") from None


def resolve_root(cfg) -> Path | None:
    """The dataset folder, or a clear error saying where the data should be."""
    source = get_source(cfg.format)
    if source is synthetic:
        return None
    if not cfg.root:
        raise ValueError(f"data.root is not set; point it at a folder laid out as: {source.LAYOUT}")
    root = Path(cfg.root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"Dataset folder {root} not found (data={cfg.get('name', cfg.format)}, format {cfg.format}). "
            f"Put the data there ({source.LAYOUT}) or set data.root=/path/to/it."
        )
    return root
