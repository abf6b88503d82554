"""The prepare step: import a source, validate, split, write manifest + report.

Outputs (each written atomically)::

    out_dir/manifest.json    canonical manifest (pipeline/data/manifest.py)
    out_dir/images/...       RGB images in displayed orientation (byte copies when the
                             file already is 8-bit RGB JPEG/PNG without rotation, else PNG)
    out_dir/rejected.json    every rejected sample with its reason code and message
    out_dir/stats.json       class counts, image/box sizes, conversions, warnings
    reports_dir/samples.png  sample grid with boxes; reports_dir/histograms.png
    metrics_path             the headline counts (images accepted, rejected, boxes), for `dvc exp show`;
                             the rest (found, per split, conversions) is in out_dir/stats.json
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

from tqdm import tqdm

from pipeline.data.manifest import Manifest
from pipeline.data.records import Record, Sample
from pipeline.data.sources import get_source, resolve_root
from pipeline.data.sources.common import apply_given_split
from pipeline.data.split import assign_splits, ratios_from_config
from pipeline.data.stats import compute_stats, save_histograms, save_sample_grid
from pipeline.data.validate import Policy, validate
from pipeline.io.atomic import atomic_dir, atomic_write_json
from pipeline.io.images import DecodedImage, save_png


class DataError(ValueError):
    """The dataset as a whole cannot be used (empty, or nothing accepted)."""


def discover_classes(records: list[Record], task: str) -> list[str]:
    usable = [r for r in records if r.problem is None]
    if task == "classification":
        return sorted({r.label for r in usable if r.label})
    if task == "multilabel":
        return sorted({name for r in usable for name in r.labels})
    return sorted({c for r in usable for c in r.box_classes})


def record_classes(record: Record) -> list[str]:
    return [record.label] if record.label else [*record.labels, *record.box_classes]


def check_classes_present(samples: list[Sample], classes: list[str], where) -> None:
    """Every class that data.classes lists has accepted samples: one without any would be an output
    the model can never learn. (A class that the dataset itself declares without samples, as COCO
    subsets do, is a warning in stats.json.)"""
    seen = set()
    for s in samples:
        seen.update([s.label] if s.label is not None else [*s.labels, *s.box_labels])
    missing = [name for i, name in enumerate(classes) if i not in seen]
    if missing:
        raise DataError(f"{where}: no accepted sample of class {', '.join(map(repr, missing))}; remove it from "
                        "data.classes, or add its images (reports/prepare lists the rejected ones)")


def case_variants(records: list[Record], policy: str) -> list[str]:
    """Class names that differ only in case (``Cat``, ``cat``): with ``data.class_case: merge`` every
    variant takes the most frequent spelling (a note says so); with ``keep`` they stay apart and a
    warning names them with example files."""
    spellings: dict[str, Counter] = {}
    examples: dict[str, list[str]] = {}
    for record in records:
        for name in record_classes(record):
            spellings.setdefault(name.lower(), Counter())[name] += 1
            examples.setdefault(name, []).append(record.annotation or record.key)
    notes = []
    for variants in (v for v in spellings.values() if len(v) > 1):
        chosen = variants.most_common(1)[0][0]
        listed = ", ".join(f"{name!r} ({n}x, e.g. {examples[name][0]})" for name, n in variants.most_common())
        if policy == "merge":
            rename = dict.fromkeys(variants, chosen)
            for record in records:
                record.label = rename.get(record.label, record.label)
                record.labels = sorted({rename.get(n, n) for n in record.labels})
                record.box_classes = [rename.get(n, n) for n in record.box_classes]
            notes.append(f"class names {listed} differ only in case: merged as {chosen!r} (data.class_case=merge)")
        elif policy == "keep":
            notes.append(f"class names {listed} differ only in case and are kept as different classes; fix the "
                         "labels, or set data.class_case=merge to merge them")
        else:
            raise ValueError(f"data.class_case: {policy!r} is not keep or merge")
    return notes


class ImageWriter:
    """Stores accepted images under ``folder/images`` and sets each sample's ``file``."""

    def __init__(self, folder: Path):
        self.folder, self.used = folder, set()

    def __call__(self, sample: Sample, image: DecodedImage, record: Record) -> None:
        copy = record.image is not None and image.is_clean
        name = sample.id if copy else str(Path(sample.id).with_suffix(".png"))
        if name in self.used:
            name = f"{sample.id}.png"
        self.used.add(name)
        target = self.folder / "images" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if copy:
            shutil.copyfile(record.image, target)
        else:
            save_png(image.pixels, target)
        sample.file = f"images/{name}"


HEADLINE = ("images", "rejected", "boxes")  # metrics/prepare.json: accepted samples, quarantined ones, boxes


def prepare(cfg, seed: int, out_dir: str | Path, reports_dir: str | Path, metrics_path: str | Path) -> dict:
    """Run the whole prepare step for the ``data`` config ``cfg``; return the stats."""
    source = get_source(cfg.format)
    root = resolve_root(cfg)
    records, declared = source.read(cfg, root)
    where = root if root is not None else "the synthetic generator"
    given_split = getattr(source, "given_split", None)  # the formats whose datasets can carry their own split
    given, given_where = given_split(cfg, root, records) if given_split else (None, f"format {cfg.format}")
    split_used = apply_given_split(records, given, cfg.split.source, given_where)
    if not records:
        raise DataError(f"{where}: no samples found for format {cfg.format}; expected {source.LAYOUT}")
    notes = case_variants(records, cfg.class_case)
    classes = list(cfg.classes or declared or discover_classes(records, source.TASK))
    if not classes:
        raise DataError(f"{where}: no class names found; set data.classes")
    if source.TASK == "classification" and len(classes) < 2:
        raise DataError(f"{where}: one class ({classes[0]!r}); a classifier needs two or more: add a folder of "
                        "images of another class (for example 'background', images without the object)")
    source_info = {"format": cfg.format, "root": cfg.root if root is not None else None}
    with atomic_dir(out_dir) as tmp:
        outcome = validate(records, source.TASK, classes, Policy.from_config(cfg), sink=ImageWriter(tmp),
                           progress=lambda it: tqdm(it, desc="validate", unit="img"))
        assert len(outcome.accepted) + len(outcome.rejected) == len(records)
        outcome.warnings += notes
        if not outcome.accepted:
            first = "; ".join(r.reason for r in outcome.rejected[:3])
            raise DataError(f"{where}: all {len(records)} samples were rejected, e.g. {first}")
        if cfg.classes:
            check_classes_present(outcome.accepted, classes, where)
        assign_splits(outcome.accepted, ratios_from_config(cfg.split), seed)
        manifest = Manifest(source.TASK, classes, outcome.accepted, source_info, root=tmp)
        stats = {**compute_stats(manifest, outcome, len(records)), "split_source": split_used}
        manifest.write(tmp / "manifest.json")
        atomic_write_json(tmp / "rejected.json", [r.to_json() for r in outcome.rejected])
        atomic_write_json(tmp / "stats.json", stats)
        with atomic_dir(reports_dir) as reports:
            save_sample_grid(manifest, reports / "samples.png")
            save_histograms(manifest, stats, reports / "histograms.png")
    counts = (stats["accepted"], stats["rejected"], stats["boxes"]["count"])
    atomic_write_json(metrics_path, dict(zip(HEADLINE, counts, strict=True)))
    return stats
