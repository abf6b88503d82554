"""What the augment stage previews for the detector's section: whole images with their boxes."""

from __future__ import annotations

from pipeline.augment.apply import Example
from pipeline.augment.stage import detection_example
from pipeline.data.manifest import Manifest


def preview_examples(manifest: Manifest, samples, seed: int) -> tuple[list[Example], list[str]]:
    if manifest.task != "detection":
        return [], manifest.classes  # no boxes to preview
    return [detection_example(manifest, s) for s in samples], manifest.classes
