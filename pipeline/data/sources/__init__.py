"""Importers, one module per source format, each turning a folder into :class:`Record` s.

Every module has ``TASK`` ("detection" or "classification"), ``LAYOUT`` (the expected
folder layout, quoted in error messages) and ``read(cfg, root) -> (records, classes)``
where ``classes`` is the class list the source declares, or None to discover it.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from pipeline.data.sources import synthetic
from pipeline.schema import DATA_FORMATS


def get_source(fmt: str):
    """The importer module of data format ``fmt`` (pipeline.schema.DATA_FORMATS names it)."""
    if fmt not in DATA_FORMATS:
        raise ValueError(f"data.format={fmt!r} is not a known source; choose one of {sorted(DATA_FORMATS)}")
    return importlib.import_module(f"pipeline.data.sources.{DATA_FORMATS[fmt][1]}")


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
