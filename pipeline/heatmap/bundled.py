"""A heatmap (FCN) bundle in `predict` (torch-free): per-class maps at the image's own size."""

from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.predict import draw
from pipeline.predict.bundled import Bundled
from pipeline.predict.preprocess import batch, scaled


def heatmaps(bundle, pixels: np.ndarray) -> np.ndarray:
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


class HeatmapBundle(Bundled):
    required = ("preprocessing.window", "preprocessing.stride", "preprocessing.scales", "preprocessing.mean",
                "postprocessing.background")
    per_image = True  # each image at its own size (and scales)
    picture = "heatmap"
    # not quantized: its outputs are dense maps at any input size, which a score on whole images
    # (what the int8 check compares) does not cover
    quantized = False

    def infer(self, bundle, images):
        return [heatmaps(bundle, px) for px in images]

    def peaks(self, probs, bundle) -> dict[str, float]:
        background = bundle.spec["postprocessing"].get("background")
        return {c: float(p.max()) for c, p in zip(bundle.labels, probs) if c != background}

    def line(self, name, probs, bundle):
        return f"{name}: peak " + " ".join(f"{c}={p:.3f}" for c, p in self.peaks(probs, bundle).items())

    def records(self, path, probs, bundle, number):
        yield self.peaks(probs, bundle), path

    def draw(self, pixels, probs, bundle):
        return draw.heatmap_picture(pixels, probs, bundle.labels, bundle.spec["postprocessing"].get("background"))


BUNDLED = HeatmapBundle()
