"""The augment stage: save each task's train/eval pipelines and draw their previews."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from pipeline.augment.apply import Example
from pipeline.augment.build import as_dict, describe, load_pipeline, write_pipelines
from pipeline.augment.input_size import resolve_input_size
from pipeline.augment.preview import save_preview
from pipeline.data.manifest import Manifest
from pipeline.io.atomic import atomic_dir
from pipeline.io.image_cache import DecodedImages
from pipeline.io.images import read_image
from pipeline.tasks import TASKS, Task, resolve

PREVIEW_ROWS = 4


def detection_example(manifest: Manifest, sample, images: DecodedImages | None = None) -> Example:
    """A manifest sample as an image with its boxes and box labels (decoded once with ``images``)."""
    path = manifest.path_of(sample)
    return Example(images.pixels(path) if images else read_image(path).pixels,
                   np.asarray(sample.boxes, np.float32).reshape(-1, 4), np.asarray(sample.box_labels, np.int64))


def preview_samples(manifest: Manifest, seed: int, rows: int = PREVIEW_ROWS):
    train = manifest.split("train") or manifest.samples
    if not train:
        return []
    picks = np.random.default_rng(seed).choice(len(train), size=min(rows, len(train)), replace=False)
    return [train[i] for i in sorted(picks)]


def section_owner(section: str) -> Task:
    """The first task (in the registry's order) that trains on ``augment.<section>``: its view of
    the data decides the preview and whether the model sees patches."""
    for task in TASKS.values():
        if task.augment == section:
            return task
    raise ValueError(f"augment.{section}: no task trains on this section; the tasks' sections are "
                     f"{', '.join(sorted({t.augment for t in TASKS.values()}))}")


def run_augment(cfg: DictConfig, manifest_path: str | Path, out_dir: str | Path, reports_dir: str | Path,
                seed: int) -> dict:
    """Write ``<task>_train.json`` / ``<task>_eval.json`` per task and ``<task>_preview.png``."""
    manifest = Manifest.read(manifest_path)
    cfg, sized = as_dict(cfg), {}
    owners = {section: section_owner(section) for section in cfg}
    for section in cfg:  # `auto` sizes from the data (a model that sees patches keeps them small)
        patches = bool(owners[section].sees_patches) and resolve(owners[section].sees_patches)(manifest)
        cfg[section], sized[section] = resolve_input_size(cfg[section], manifest, section, patches)
    written = write_pipelines(cfg, out_dir, seed)
    samples = preview_samples(manifest, seed)
    summary = {}
    with atomic_dir(reports_dir) as tmp:
        for task in cfg:
            train, evaluate = load_pipeline(written[f"{task}_train"]), load_pipeline(written[f"{task}_eval"])
            summary[task] = {"train": describe(train), "eval": describe(evaluate),
                             "input_size": cfg[task]["input_size"], "sized_by": sized[task]}
            examples, classes = resolve(owners[task].preview)(manifest, samples, seed)
            if examples:
                save_preview(train, evaluate, examples, classes, tmp / f"{task}_preview.png", seed=seed,
                             title=f"{task}: eval view, then train augmentations")
    return summary
