"""A model's input size chosen from the data (``augment.<section>.input_size: auto``).

Letterboxing a photo to 160 px costs the precision of its boxes (raccoon's photos, about 500 px:
docs/models.md has the measured table), a classifier that sees 300 px photos at 64 px loses the
detail its pretrained backbone was made for (224 px), and images smaller than the input gain
nothing from being upscaled. So ``auto`` takes the largest of ``auto_input_sizes`` that does not
upscale the median training image's longer side (the smallest of them when every one would): the
built-in 160 px images stay small, photos get the largest size the list allows. The list bounds
the cost: CPU-sized by default; on a GPU, e.g. [320, 416, 512, 640] for the detector.

A classifier trained on the patch view of detection data (object and background crops) sees
windows that it, and the FCN made from it, sweeps over whole images: its ``auto`` is the smallest
listed size, the window, whatever the photos.
"""

from __future__ import annotations

from statistics import median

from pipeline.data.manifest import Manifest

AUTO = "auto"


def median_longer_side(manifest: Manifest, section: str) -> float:
    samples = manifest.split("train") or manifest.samples
    if not samples:
        raise ValueError(f"augment.{section}.input_size: auto needs training images in the manifest; "
                         "set input_size: [width, height]")
    return median(max(s.width, s.height) for s in samples)


def choose_input_size(longer_side: float, sizes: list[int]) -> int:
    """The largest of ``sizes`` at most ``longer_side``, else the smallest."""
    fitting = [s for s in sizes if s <= longer_side]
    return max(fitting) if fitting else min(sizes)


def positive_ints(values) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)


def check_input_size(task_cfg, section: str) -> None:
    """Refuse an input size of ``augment.<section>`` that is neither [width, height] nor a usable ``auto``."""
    size, sizes = task_cfg["input_size"], task_cfg["auto_input_sizes"]
    if size != AUTO:
        if isinstance(size, str) or not hasattr(size, "__len__") or len(size) != 2 or not positive_ints(size):
            raise ValueError(f"augment.{section}.input_size: {size!r} is neither [width, height] (positive integers) "
                             f"nor {AUTO}")
        return
    if task_cfg["resize"] == "tile":
        raise ValueError(f"augment.{section}.input_size: auto sizes a whole image's letterbox; with resize: tile set "
                         "the tile's [width, height] (conf/augment/detector/tiles.yaml)")
    if not sizes or not positive_ints(sizes):
        raise ValueError(f"augment.{section}.auto_input_sizes: {sizes!r} is not a list of positive integers")


def resolve_input_size(task_cfg: dict, manifest: Manifest, section: str, patches: bool = False) -> tuple[dict, str]:
    """``augment.<section>`` with ``input_size`` as [width, height], and why that size (for the stage to
    print). ``patches``: the section's model sees crops of the images (the patch view), not whole images."""
    check_input_size(task_cfg, section)
    if task_cfg["input_size"] != AUTO:
        return task_cfg, "set"
    sizes = task_cfg["auto_input_sizes"]
    if patches:
        return {**task_cfg, "input_size": [min(sizes)] * 2}, "auto: the patch view keeps the smallest size"
    side = median_longer_side(manifest, section)
    chosen = choose_input_size(side, sizes)
    return {**task_cfg, "input_size": [chosen] * 2}, f"auto: training images' median longer side {side:g} px"
