"""Preview pictures: several augmentations of the same images, transformed boxes drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import albumentations as A

from pipeline.augment.apply import Example, augment, sample_seed
from pipeline.viz import Panel, save_grid


def preview_panels(train: A.Compose, evaluate: A.Compose, examples: Sequence[Example], classes: Sequence[str],
                   variants: int = 5, seed: int = 0) -> list[Panel]:
    """One row per example: the eval view, then ``variants`` train augmentations of it."""
    panels = []
    for row, example in enumerate(examples):
        for col in range(variants + 1):
            pipeline, title = (evaluate, "eval") if col == 0 else (train, f"train #{col}")
            out = augment(pipeline, example, sample_seed(seed, col, row))
            names = [classes[int(i)] for i in out.labels]
            if out.label is not None and not names:
                title = f"{title}: {classes[out.label]}"
            panels.append(Panel(out.image, out.boxes.tolist(), names, title))
    return panels


def save_preview(train: A.Compose, evaluate: A.Compose, examples: Sequence[Example], classes: Sequence[str],
                 path: str | Path, variants: int = 5, seed: int = 0, title: str = "") -> None:
    panels = preview_panels(train, evaluate, examples, classes, variants, seed)
    save_grid(panels, path, ncols=variants + 1, title=title)
