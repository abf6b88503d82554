"""What the augment stage previews for the classifier's section: whole images of classification
data, or the object and background patches of detection data (the patch view, pipeline/data/patches.py)."""

from __future__ import annotations

from pipeline.augment.apply import Example
from pipeline.data.manifest import Manifest
from pipeline.data.patches import BACKGROUND, crop, patch_windows
from pipeline.io.images import read_image

MAX_PATCH_ROWS = 6


def sees_patches(manifest: Manifest) -> bool:
    """Detection data reaches the classifier as patches: `input_size: auto` keeps their small size."""
    return manifest.task == "detection"


def preview_examples(manifest: Manifest, samples, seed: int) -> tuple[list[Example], list[str]]:
    if not sees_patches(manifest):  # whole images (a multi-label image's label set is not drawn)
        return [Example(read_image(manifest.path_of(s)).pixels, label=s.label) for s in samples], manifest.classes
    patches = patch_windows(samples, len(manifest.classes), seed=seed)
    by_label = {}
    for p in patches:  # one patch per class first, background last, for a varied preview
        by_label.setdefault(p.label, p)
    chosen = [by_label[k] for k in sorted(by_label)][:MAX_PATCH_ROWS]
    images = {i: read_image(manifest.path_of(samples[i])).pixels for i in {p.sample for p in chosen}}
    return [Example(crop(images[p.sample], p.box), label=p.label) for p in chosen], manifest.classes + [BACKGROUND]
