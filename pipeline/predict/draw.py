"""Pictures with Pillow only: boxes with labels, heatmap overlays, a grid of pictures."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]


def boxes_picture(pixels: np.ndarray, found: dict, labels: list[str], min_score: float = 0.3) -> Image.Image:
    image = Image.fromarray(pixels).convert("RGB")
    pen = ImageDraw.Draw(image)
    for box, score, label in zip(found["boxes"], found["scores"], found["labels"]):
        if score < min_score:
            continue
        colour = PALETTE[int(label) % len(PALETTE)]
        pen.rectangle([float(v) for v in box], outline=colour, width=2)
        pen.text((float(box[0]) + 2, float(box[1]) + 1), f"{labels[int(label)]} {score:.2f}", fill=colour)
    return image


def classes_picture(pixels: np.ndarray, probs: np.ndarray, labels: list[str], top: int = 3,
                    width: int = 256) -> Image.Image:
    """The image (scaled to ``width``) above its ``top`` classes: a bar and a percentage each."""
    image = Image.fromarray(pixels).convert("RGB")
    image = image.resize((width, max(1, round(image.height * width / image.width))))
    ranked = np.argsort(probs)[::-1][:top]
    row = 16
    sheet = Image.new("RGB", (width, image.height + row * len(ranked) + 4), (255, 255, 255))
    sheet.paste(image, (0, 0))
    pen = ImageDraw.Draw(sheet)
    for k, i in enumerate(ranked):
        y = image.height + 2 + row * k
        tint = tuple(255 - (255 - c) // 2 for c in PALETTE[int(i) % len(PALETTE)])  # light: the text stays legible
        pen.rectangle([0, y + 1, round(float(probs[i]) * width), y + row - 2], fill=tint)
        pen.text((3, y + 2), f"{labels[int(i)]} {100 * float(probs[i]):.1f}%", fill=(0, 0, 0))
    return sheet


def caption_picture(pixels: np.ndarray, text: str) -> Image.Image:
    image = Image.fromarray(pixels).convert("RGB")
    ImageDraw.Draw(image).text((3, 3), text, fill=(255, 255, 0))
    return image


def heatmap_picture(pixels: np.ndarray, probs: np.ndarray, labels: list[str], background: str | None) -> Image.Image:
    """The image under each pixel's most likely object class, coloured by class, opacity by probability."""
    objects = [i for i, name in enumerate(labels) if name != background]
    best = probs[objects].argmax(0)
    strength = probs[objects].max(0)[..., None]
    colours = np.array([PALETTE[i % len(PALETTE)] for i in objects], dtype=np.float32)[best]
    mixed = pixels.astype(np.float32) * (1 - 0.6 * strength) + colours * 0.6 * strength
    image = Image.fromarray(mixed.clip(0, 255).astype(np.uint8))
    pen = ImageDraw.Draw(image)
    for k, i in enumerate(objects):
        pen.text((4, 4 + 12 * k), labels[i], fill=PALETTE[i % len(PALETTE)])
    return image


def grid(pictures: list[Image.Image], columns: int = 4, cell: int = 256) -> Image.Image:
    rows = max(1, -(-len(pictures) // columns))
    sheet = Image.new("RGB", (columns * cell, rows * cell), (255, 255, 255))
    for i, picture in enumerate(pictures):
        picture = picture.copy()
        picture.thumbnail((cell, cell))
        sheet.paste(picture, ((i % columns) * cell, (i // columns) * cell))
    return sheet
