"""What the augment stage previews for the multi-label section: whole images (their label sets
are not drawn)."""

from __future__ import annotations

from pipeline.augment.apply import Example
from pipeline.data.manifest import Manifest
from pipeline.io.images import read_image


def preview_examples(manifest: Manifest, samples, seed: int) -> tuple[list[Example], list[str]]:
    return [Example(read_image(manifest.path_of(s)).pixels) for s in samples], manifest.classes
