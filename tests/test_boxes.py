import numpy as np
import pytest
from PIL import Image

from pipeline.boxes import (
    cxcywh_norm_to_xyxy,
    exif_displayed_size,
    exif_transform_boxes,
    xywh_to_xyxy,
    xyxy_to_cxcywh_norm,
    xyxy_to_xywh,
)

# Pillow's transpose for each EXIF orientation, as ImageOps.exif_transpose applies it
TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
             5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
             8: Image.Transpose.ROTATE_90}


def test_converters_round_trip():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (20, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 50, (20, 2))], axis=1)
    np.testing.assert_allclose(xywh_to_xyxy(xyxy_to_xywh(boxes)), boxes)
    np.testing.assert_allclose(cxcywh_norm_to_xyxy(xyxy_to_cxcywh_norm(boxes, 120, 80), 120, 80), boxes)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_box_transform_matches_pillow_on_a_mask(orientation):
    """Oracle: draw the box as a mask, let Pillow orient it, compare with the moved box."""
    rng = np.random.default_rng(orientation)
    w, h = 37, 23
    for _ in range(25):
        x1, y1 = int(rng.integers(0, w - 2)), int(rng.integers(0, h - 2))
        x2, y2 = int(rng.integers(x1 + 1, w + 1)), int(rng.integers(y1 + 1, h + 1))
        mask = np.zeros((h, w), np.uint8)
        mask[y1:y2, x1:x2] = 255
        img = Image.fromarray(mask)
        shown = np.asarray(img.transpose(TRANSPOSE[orientation]) if orientation != 1 else img)
        ys, xs = np.nonzero(shown)
        expected = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        np.testing.assert_allclose(exif_transform_boxes([[x1, y1, x2, y2]], orientation, w, h)[0], expected)
        assert exif_displayed_size(orientation, w, h) == (shown.shape[1], shown.shape[0])
