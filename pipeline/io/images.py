"""Decode any image file into RGB uint8 pixels in its displayed orientation.

One function, :func:`read_image`, is used by ``prepare``, the data loaders and
``predict`` so that every consumer sees the same pixels: EXIF orientation applied,
grayscale / palette / RGBA / CMYK / 16-bit converted to 8-bit RGB (alpha dropped),
truncated files and decompression bombs refused with a clear :class:`ImageError`.
This module needs only numpy and Pillow (``predict`` must not import torch).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own default limit (about 0.25 GiB of RGBA)
EXIF_ORIENTATION = 0x0112

# A truncated file must fail loudly, not decode as a grey bottom half.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageError(ValueError):
    """An image that cannot be used; ``code`` is a short machine-readable reason."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class DecodedImage:
    pixels: np.ndarray  # H x W x 3, uint8, displayed orientation
    stored_size: tuple[int, int]  # (width, height) as stored, before EXIF orientation
    orientation: int  # EXIF orientation tag, 1 = as stored
    mode: str  # Pillow mode of the file ("RGB", "L", "CMYK", "I;16", ...)
    format: str | None  # Pillow format name ("JPEG", "PNG", ...)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) as displayed."""
        return self.pixels.shape[1], self.pixels.shape[0]

    @property
    def is_clean(self) -> bool:
        """True when the file's bytes already are 8-bit RGB in displayed orientation."""
        return self.mode == "RGB" and self.orientation == 1 and self.format in ("JPEG", "PNG")


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """Pixels of ``img`` as H x W x 3 uint8, scaling high bit depths down to 8 bits."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit grayscale (Pillow opens 16-bit PNGs as I;16 or I): scale 0..65535 to 0..255.
        arr = np.asarray(img, dtype=np.float64)
        gray = np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 if arr.size and arr.max() <= 1.0 else 1.0
        gray = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def bomb_message(path: Path, size: str, max_pixels: int) -> str:
    return (f"{path}: {size} exceeds the limit of {max_pixels} pixels (possible decompression bomb); if the "
            "image is genuine, raise the limit (prepare: data.max_image_pixels, predict: --max-pixels)")


def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode ``path`` fully; raise :class:`ImageError` naming the file and the problem.

    Images over ``max_pixels`` are refused from their header, before any decoding."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageError("decompression_bomb",
                                     bomb_message(path, f"{width}x{height} = {width * height} pixels", max_pixels))
                img.load()
                orientation = int(img.getexif().get(EXIF_ORIENTATION, 1) or 1)
                if orientation not in range(1, 9):
                    orientation = 1
                mode, fmt = img.mode, img.format
                shown = ImageOps.exif_transpose(img) if orientation != 1 else img
                pixels = to_rgb_array(shown)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own limit (Image.MAX_IMAGE_PIXELS), checked inside Image.open
        raise ImageError("decompression_bomb", bomb_message(path, f"the image ({exc})", max_pixels)) from exc
    except FileNotFoundError as exc:
        raise ImageError("missing_image", f"{path}: image file not found") from exc
    except Exception as exc:  # Pillow raises many types for corrupt data
        raise ImageError(
            "undecodable_image",
            f"{path}: cannot decode image ({type(exc).__name__}: {exc}); replace or remove the file",
        ) from exc
    return DecodedImage(pixels, (width, height), orientation, mode, fmt)


def content_hash(pixels: np.ndarray) -> str:
    """Hash of decoded pixels: equal for the same picture saved as different files."""
    digest = hashlib.sha256()
    digest.update(str(pixels.shape).encode())
    digest.update(np.ascontiguousarray(pixels).tobytes())
    return digest.hexdigest()


def save_png(pixels: np.ndarray, path: str | Path) -> None:
    Image.fromarray(pixels).save(path, format="PNG", compress_level=1)
