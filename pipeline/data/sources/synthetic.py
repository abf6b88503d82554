"""The built-in synthetic dataset: coloured shapes on real photographed textures.

Offline and seeded: image ``i`` is drawn from ``numpy.random.default_rng([seed, kind, i])``,
so asking for more images never changes the earlier ones. It yields

* detection images (``image_size``) with exact boxes, split train/val/test later, and
* larger ``scene`` images (``scene_size``, split ``"scene"``) with objects of the same pixel
  sizes, for sliding-window and fully convolutional heatmaps.

The patch-classification view (object vs background crops) is cut from the detection
images by the classifier's data module, as for any detection dataset.
Backgrounds are scikit-image's bundled photographs (grass, gravel, brick), randomly
cropped, flipped and tinted; objects vary in shape, colour, shading, size and overlap.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image, ImageDraw

from pipeline.data.records import Record

TASK = "detection"
LAYOUT = "nothing: the synthetic source is generated in memory"
SHAPES = ("circle", "square", "triangle", "star")
BACKGROUNDS = ("grass", "gravel", "brick")


@functools.cache
def texture(name: str) -> np.ndarray:
    import skimage.data

    if name not in BACKGROUNDS:
        raise ValueError(f"unknown synthetic background {name!r}; choose from {list(BACKGROUNDS)}")
    return getattr(skimage.data, name)()


def hsv_color(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float]) -> np.ndarray:
    import colorsys

    return np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(*sat), rng.uniform(*val)))


def background(rng: np.random.Generator, width: int, height: int, names) -> np.ndarray:
    tex = texture(names[rng.integers(len(names))])
    tex = np.rot90(tex, k=int(rng.integers(4)))
    if rng.uniform() < 0.5:
        tex = tex[:, ::-1]
    reps = (math.ceil(height / tex.shape[0]), math.ceil(width / tex.shape[1]))
    tex = np.tile(tex, reps) if reps != (1, 1) else tex
    y0 = int(rng.integers(tex.shape[0] - height + 1))
    x0 = int(rng.integers(tex.shape[1] - width + 1))
    gray = tex[y0:y0 + height, x0:x0 + width].astype(np.float32) / 255.0
    tint = hsv_color(rng, (0.05, 0.35), (0.45, 0.9))
    return gray[..., None] * tint[None, None, :] * 1.3


def shape_polygon(shape: str, size: int, rng: np.random.Generator) -> list[tuple[float, float]] | None:
    """Vertices of ``shape`` inscribed in a ``size`` square, randomly rotated (None: ellipse)."""
    if shape == "circle":
        return None
    r = size / 2
    angle = rng.uniform(0, 2 * math.pi)
    if shape == "square":
        radii, count = [r], 4
    elif shape == "triangle":
        radii, count = [r], 3
    elif shape == "star":
        radii, count = [r, r * 0.45], 10
    else:
        raise ValueError(f"unknown synthetic shape {shape!r}; choose from {list(SHAPES)}")
    return [
        (r + radii[i % len(radii)] * math.cos(angle + 2 * math.pi * i / count),
         r + radii[i % len(radii)] * math.sin(angle + 2 * math.pi * i / count))
        for i in range(count)
    ]


def shape_mask(shape: str, size: int, aspect: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of ``shape`` drawn in a ``size`` square, then stretched to width/height = ``aspect``."""
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    polygon = shape_polygon(shape, size, rng)
    if polygon is None:
        squash = rng.uniform(0.8, 1.0)
        inset = size * (1 - squash) / 2
        horizontal = rng.uniform() < 0.5
        box = (0, inset, size - 1, size - 1 - inset) if horizontal else (inset, 0, size - 1 - inset, size - 1)
        draw.ellipse(box, fill=255)
    else:
        draw.polygon(polygon, fill=255)
    w, h = max(3, round(size * math.sqrt(aspect))), max(3, round(size / math.sqrt(aspect)))
    return np.asarray(mask.resize((w, h), Image.NEAREST)) > 127


def covered_fraction(a, b) -> float:
    """Intersection over the smaller box: how much of the smaller object the other hides."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / smaller if smaller > 0 else 0.0


def render(rng: np.random.Generator, width: int, height: int, n_objects: int, size_px: tuple[float, float],
           aspect: tuple[float, float], classes: list[str], max_overlap: float,
           backgrounds) -> tuple[np.ndarray, list, list]:
    """One image with up to ``n_objects`` shapes; returns (pixels, boxes xyxy, class names)."""
    canvas = background(rng, width, height, backgrounds)
    boxes, names = [], []
    for _ in range(n_objects):
        for _attempt in range(30):
            ratio = math.exp(rng.uniform(math.log(aspect[0]), math.log(aspect[1])))
            size = int(round(rng.uniform(*size_px)))
            size = max(4, min(size, int(min(width * ratio ** -0.5, height * ratio ** 0.5))))
            shape = classes[rng.integers(len(classes))]
            mask = shape_mask(shape, size, ratio, rng)
            mh, mw = mask.shape
            x0, y0 = int(rng.integers(width - mw + 1)), int(rng.integers(height - mh + 1))
            ys, xs = np.nonzero(mask)
            box = [x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1]
            if all(covered_fraction(box, b) <= max_overlap for b in boxes):
                break
        else:
            continue
        color = hsv_color(rng, (0.55, 1.0), (0.6, 1.0))
        theta = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:mh, 0:mw] / max(mh - 1, mw - 1, 1)
        shade = 0.8 + 0.3 * (math.cos(theta) * xx + math.sin(theta) * yy)
        patch = canvas[y0:y0 + mh, x0:x0 + mw]
        patch[mask] = (color[None, None, :] * shade[..., None])[mask]
        boxes.append([float(v) for v in box])
        names.append(shape)
    pixels = np.clip(canvas * 255.0, 0, 255).round().astype(np.uint8)
    return pixels, boxes, names


def read(cfg, root=None) -> tuple[list[Record], list[str]]:
    classes = list(cfg.classes or SHAPES)
    unknown = sorted(set(classes) - set(SHAPES))
    if unknown:
        raise ValueError(f"data.classes: the synthetic generator draws {list(SHAPES)}, not {unknown}")
    seed = cfg.seed
    width, height = cfg.image_size
    lo, hi = cfg.scale
    size_px = (lo * min(width, height), hi * min(width, height))
    backgrounds = list(cfg.backgrounds)
    records = []
    groups = [("images", "img", cfg.num_images, (width, height), cfg.objects_per_image, None),
              ("scenes", "scene", cfg.num_scenes, tuple(cfg.scene_size), cfg.objects_per_scene, "scene")]
    for kind, (folder, prefix, count, (w, h), (n_min, n_max), split) in enumerate(groups):
        for i in range(count):
            rng = np.random.default_rng([seed, kind, i])
            n = int(rng.integers(n_min, n_max + 1))
            pixels, boxes, names = render(rng, w, h, n, size_px, tuple(cfg.aspect), classes, cfg.max_overlap,
                                          backgrounds)
            records.append(Record(key=f"{folder}/{prefix}_{i:05d}.png", pixels=pixels, boxes=boxes,
                                  box_classes=names, split=split))
    return records, classes
