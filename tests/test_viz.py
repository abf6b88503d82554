"""The image grids every stage draws (data samples, augmentation previews, predictions)."""

import numpy as np
from PIL import Image

from pipeline.viz import CAPTION_LINE, CELL, HEADING, Panel, class_color, save_grid


def near(sheet: np.ndarray, x: int, y: int, color) -> bool:
    """``color`` at (x, y) or a pixel beside it (the outline's rounding)."""
    return any(tuple(sheet[y, x + dx]) == tuple(color) for dx in (-1, 0, 1))


def test_a_grid_fits_each_image_and_draws_its_boxes_in_their_class_colours(tmp_path):
    black = np.zeros((50, 100, 3), np.uint8)
    panels = [Panel(black, [[10, 10, 40, 30]], ["whale"], "one"),
              Panel(black.astype(np.float32), [[50, 20, 90, 45], [5, 5, 15, 15]], ["boat", "whale"], "two\nlines"),
              Panel(np.repeat([[-0.5] * 10 + [0.5] * 10], 20, axis=0).astype(np.float32), title="grey, clipped")]
    save_grid(panels, tmp_path / "grid.png", ncols=2, title="samples")
    sheet = np.asarray(Image.open(tmp_path / "grid.png").convert("RGB"))
    scale = (CELL - 6) / 100  # the wide images fill the cell's width; rows as high as the tallest fitted image
    fitted_height, caption = round(50 * scale), 2 * CAPTION_LINE + 2
    row = caption + (CELL - 6) + 6  # the square one is the tallest
    assert sheet.shape == (HEADING + 2 * row, 2 * CELL, 3)
    left, top = (CELL - (CELL - 6)) // 2, HEADING + caption + (CELL - fitted_height) // 2
    whale, boat = class_color(0), class_color(1)
    assert whale != boat
    assert near(sheet, left + round(10 * scale), top + round(20 * scale), whale)  # left side of the first box
    assert near(sheet, CELL + left + round(90 * scale) - 1, top + round(35 * scale), boat)
    assert near(sheet, CELL + left + round(5 * scale), top + round(12 * scale), whale)  # one colour per class
    assert tuple(sheet[top + round(40 * scale), left + round(25 * scale)]) == (0, 0, 0)  # the image between boxes
    grey = HEADING + row + caption + CELL // 2
    assert tuple(sheet[grey, CELL // 4]) == (0, 0, 0) and tuple(sheet[grey, 3 * CELL // 4]) == (128, 128, 128)
    assert tuple(sheet[HEADING + row + CELL // 2, CELL + CELL // 2]) == (255, 255, 255)  # no fourth panel
    assert (sheet[:HEADING] < 128).any() and (sheet[HEADING:HEADING + caption, :CELL] < 128).any()  # the titles
