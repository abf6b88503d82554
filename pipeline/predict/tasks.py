"""What each kind of bundle computes for a batch of images (H x W x 3 uint8, any sizes)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.predict.bundle import Bundle
from pipeline.predict.postprocess import detections, settings
from pipeline.predict.preprocess import batch, fit_batch, scaled
from pipeline.predict.tiles import sliced_detections


def classify(bundle: Bundle, images: list[np.ndarray]) -> np.ndarray:
    """N x K class probabilities."""
    return bundle.run(fit_batch(images, bundle.spec["preprocessing"])[0])[0]


def tag(bundle: Bundle, images: list[np.ndarray]) -> list[list[tuple[str, float]]]:
    """Per image, (class, probability) of each class at or above its threshold, most likely first."""
    probs = bundle.run(fit_batch(images, bundle.spec["preprocessing"])[0])[0]
    thresholds = np.asarray(bundle.spec["postprocessing"]["thresholds"], np.float32)
    return [[(bundle.labels[c], float(p[c])) for c in np.argsort(-p) if p[c] >= thresholds[c]] for p in probs]


def detect_sliced(bundle: Bundle, images: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Per image: the boxes found in its overlapping tiles, merged across tiles."""
    pre, post = bundle.spec["preprocessing"], settings(bundle.spec["postprocessing"])
    size, tiles = tuple(pre["input_size"]), pre["tiles"]

    def detect_tiles(parts: list[np.ndarray]) -> list[dict]:
        scores, boxes = bundle.run(batch(parts))
        return [detections(s, b, size, **post) for s, b in zip(scores, boxes)]

    return [sliced_detections(px, size, float(tiles["overlap"]), int(pre["pad_fill"]), float(tiles["merge_ios"]),
                              int(post["max_detections"]), detect_tiles) for px in images]


def detect(bundle: Bundle, images: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Per image: boxes (xyxy, the image's own pixels), scores, labels."""
    if bundle.spec["preprocessing"]["resize"] == "tile":
        return detect_sliced(bundle, images)
    size = tuple(bundle.spec["preprocessing"]["input_size"])
    inputs, placements = fit_batch(images, bundle.spec["preprocessing"])
    scores, boxes = bundle.run(inputs)
    out = []
    for placement, s, b, px in zip(placements, scores, boxes, images):
        found = detections(s, b, size, **settings(bundle.spec["postprocessing"]))
        h, w = px.shape[:2]
        found["boxes"] = np.clip(placement.to_image(found["boxes"]), 0, [w, h, w, h]).astype(np.float32)
        out.append(found)
    return out


def heatmaps(bundle: Bundle, pixels: np.ndarray) -> np.ndarray:
    """K x H x W probabilities at the image's size: each class's maximum over the bundle's scales.
    Cell (i, j) looks at the window whose corner is (j, i) * stride: its value is painted around
    that window's centre."""
    pre = bundle.spec["preprocessing"]
    h, w = pixels.shape[:2]
    window, stride, fill = tuple(pre["window"]), int(pre["stride"]), [round(m * 255) for m in pre["mean"]]
    best = None
    for scale in pre["scales"]:
        image = scaled(pixels, scale, window, fill)
        probs = bundle.run(batch([image]))[0][0]  # K x h' x w'
        left, top = (window[0] - stride) // 2, (window[1] - stride) // 2
        maps = []
        for p in probs:
            canvas = np.zeros(image.shape[:2], dtype=np.float32)
            cells = np.asarray(Image.fromarray(p).resize((p.shape[1] * stride, p.shape[0] * stride),
                                                          Image.Resampling.BILINEAR))
            rows, cols = min(cells.shape[0], canvas.shape[0] - top), min(cells.shape[1], canvas.shape[1] - left)
            canvas[top:top + rows, left:left + cols] = cells[:rows, :cols]
            sw, sh = round(w * scale), round(h * scale)  # the image's own part of the (padded) input
            maps.append(np.asarray(Image.fromarray(canvas[:sh, :sw]).resize((w, h), Image.Resampling.BILINEAR)))
        best = np.stack(maps) if best is None else np.maximum(best, np.stack(maps))
    return best
