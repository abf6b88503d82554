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
from pipeline.data.patches import BACKGROUND, crop, patch_windows
from pipeline.io.atomic import atomic_dir
from pipeline.io.image_cache import DecodedImages
from pipeline.io.images import read_image

PREVIEW_ROWS = 4
MAX_PATCH_ROWS = 6


def detection_example(manifest: Manifest, sample, images: DecodedImages | None = None) -> Example:
    """A manifest sample as an image with its boxes and box labels (decoded once with ``images``)."""
    path = manifest.path_of(sample)
    return Example(images.pixels(path) if images else read_image(path).pixels,
                   np.asarray(sample.boxes, np.float32).reshape(-1, 4), np.asarray(sample.box_labels, np.int64))


def classifier_examples(manifest: Manifest, samples, seed: int) -> tuple[list[Example], list[str]]:
    """Whole images of a classification dataset, or object/background patches of a detection one."""
    if manifest.task != "detection":  # whole images (a multi-label image's label set is not drawn)
        return [Example(read_image(manifest.path_of(s)).pixels, label=s.label) for s in samples], manifest.classes
    patches = patch_windows(samples, len(manifest.classes), seed=seed)
    by_label = {}
    for p in patches:  # one patch per class first, background last, for a varied preview
        by_label.setdefault(p.label, p)
    chosen = [by_label[k] for k in sorted(by_label)][:MAX_PATCH_ROWS]
    images = {i: read_image(manifest.path_of(samples[i])).pixels for i in {p.sample for p in chosen}}
    return [Example(crop(images[p.sample], p.box), label=p.label) for p in chosen], manifest.classes + [BACKGROUND]


def preview_samples(manifest: Manifest, seed: int, rows: int = PREVIEW_ROWS):
    train = manifest.split("train") or manifest.samples
    if not train:
        return []
    picks = np.random.default_rng(seed).choice(len(train), size=min(rows, len(train)), replace=False)
    return [train[i] for i in sorted(picks)]


def run_augment(cfg: DictConfig, manifest_path: str | Path, out_dir: str | Path, reports_dir: str | Path,
                seed: int) -> dict:
    """Write ``<task>_train.json`` / ``<task>_eval.json`` per task and ``<task>_preview.png``."""
    manifest = Manifest.read(manifest_path)
    cfg = as_dict(cfg)
    if "detector" in cfg:
        cfg["detector"] = resolve_input_size(cfg["detector"], manifest)
    written = write_pipelines(cfg, out_dir, seed)
    samples = preview_samples(manifest, seed)
    summary = {}
    with atomic_dir(reports_dir) as tmp:
        for task in cfg:
            train, evaluate = load_pipeline(written[f"{task}_train"]), load_pipeline(written[f"{task}_eval"])
            summary[task] = {"train": describe(train), "eval": describe(evaluate),
                             "input_size": cfg[task]["input_size"]}
            if task == "detector":
                if manifest.task != "detection":
                    continue  # no boxes to preview
                examples, classes = [detection_example(manifest, s) for s in samples], manifest.classes
            elif task == "multilabel":  # whole images; their labels are sets, not drawn
                examples, classes = [Example(read_image(manifest.path_of(s)).pixels) for s in samples], manifest.classes
            else:
                examples, classes = classifier_examples(manifest, samples, seed)
            if examples:
                save_preview(train, evaluate, examples, classes, tmp / f"{task}_preview.png", seed=seed,
                             title=f"{task}: eval view, then train augmentations")
    return summary
