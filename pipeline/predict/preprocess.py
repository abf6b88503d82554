"""Resize an image to the network's input the way the pipeline's eval transforms do (stretch, or
letterbox: longest side to fit, centred, padded with a grey) and map boxes back; scale whole
scenes for the heatmap network the way its stage does (Pillow)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Placement:
    """Where the image landed in the network's input: input = image * scale + offset."""

    scale: tuple[float, float]
    offset: tuple[float, float]

    def to_image(self, boxes: np.ndarray) -> np.ndarray:
        """xyxy boxes from input pixels to the original image's pixels."""
        sx, sy = self.scale
        ox, oy = self.offset
        return (boxes - np.array([ox, oy, ox, oy])) / np.array([sx, sy, sx, sy])


def resized(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pillow's bilinear resize (antialiased when shrinking), as the heatmap stage scales scenes."""
    width, height = size
    if (pixels.shape[1], pixels.shape[0]) == (width, height):
        return pixels
    return np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.BILINEAR))


def sample_points(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output pixel along one axis: the two source pixels and the weight of the second
    (pixel centres aligned, coordinates clamped to the image, as OpenCV does)."""
    x = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    low = np.floor(x).astype(np.int64)
    return low, np.minimum(low + 1, n_in - 1), (x - low).astype(np.float32)[:, None]


def bilinear(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """OpenCV's INTER_LINEAR resize (not antialiased), which albumentations' Resize and
    LongestMaxSize apply in training and evaluation, in numpy: `predict` carries no OpenCV, and
    Pillow's antialiased resize differs from it by several grey levels on shrunk photos."""
    width, height = size
    h, w = pixels.shape[:2]
    if (w, h) == (width, height):
        return pixels
    y0, y1, fy = sample_points(height, h)
    x0, x1, fx = sample_points(width, w)

    def row(ys):  # output width, source rows ys (indexing uint8 first: no float copy of a large image)
        rows = pixels[ys]
        return rows[:, x0].astype(np.float32) * (1 - fx) + rows[:, x1].astype(np.float32) * fx

    out = row(y0) * (1 - fy[:, None]) + row(y1) * fy[:, None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def fit(pixels: np.ndarray, size: tuple[int, int], mode: str, fill: int = 114) -> tuple[np.ndarray, Placement]:
    """``pixels`` (H x W x 3 uint8) at the input ``size`` (width, height): ``stretch`` or ``letterbox``."""
    width, height = size
    h, w = pixels.shape[:2]
    if mode == "stretch":
        return bilinear(pixels, size), Placement((width / w, height / h), (0.0, 0.0))
    if mode != "letterbox":
        raise ValueError(f"resize mode {mode!r}: expected stretch or letterbox")
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = np.full((height, width, 3), fill, dtype=np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[top:top + new_h, left:left + new_w] = bilinear(pixels, (new_w, new_h))
    return canvas, Placement((new_w / w, new_h / h), (float(left), float(top)))


def scaled(pixels: np.ndarray, scale: float, minimum: tuple[int, int], fill) -> np.ndarray:
    """``pixels`` resized by ``scale``, padded (bottom/right, with ``fill``) to at least ``minimum``."""
    h, w = pixels.shape[:2]
    out = resized(pixels, (max(1, round(w * scale)), max(1, round(h * scale))))
    min_w, min_h = minimum
    if out.shape[0] >= min_h and out.shape[1] >= min_w:
        return out
    canvas = np.empty((max(min_h, out.shape[0]), max(min_w, out.shape[1]), 3), dtype=np.uint8)
    canvas[:] = np.asarray(fill, dtype=np.uint8)
    canvas[:out.shape[0], :out.shape[1]] = out
    return canvas


def batch(images: list[np.ndarray]) -> np.ndarray:
    """H x W x 3 uint8 images of one size -> float32 B x 3 x H x W (0..255: the graph normalises)."""
    return np.stack(images).transpose(0, 3, 1, 2).astype(np.float32)


def fit_batch(images: list[np.ndarray], pre: dict) -> tuple[np.ndarray, list[Placement]]:
    """Images of any sizes fitted to a bundle's ``preprocessing`` input, as one batch, with where
    each landed. (A tiled detector's input is tiles instead: :func:`network_batch`.)"""
    fitted = [fit(px, tuple(pre["input_size"]), pre["resize"], pre["pad_fill"]) for px in images]
    return batch([f[0] for f in fitted]), [f[1] for f in fitted]


def network_batch(pixels: np.ndarray, pre: dict) -> np.ndarray:
    """What the network sees of one image: the image fitted to the input, or, for a tiled detector,
    all its tiles (calibration and example inputs)."""
    if pre["resize"] != "tile":
        return fit_batch([pixels], pre)[0]
    from pipeline.predict.tiles import cut, windows

    h, w = pixels.shape[:2]
    cuts = windows(w, h, tuple(pre["input_size"]), float(pre["tiles"]["overlap"]))
    return batch([cut(pixels, window, int(pre["pad_fill"])) for window in cuts])
