"""Large images with small objects: the tile grid, the boxes a tile keeps, the training crops, and
the merge of what neighbouring tiles found (pipeline/predict/tiles.py, pipeline/detect/data.py)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.augment.apply import Example, augment
from pipeline.augment.build import build_pipeline
from pipeline.detect.data import tile_example
from pipeline.predict.tiles import cut, merge, sliced_detections, windows

POLICY = {"format": "pascal_voc", "min_visibility": 0.3, "min_area": 16, "min_width": 2, "min_height": 2,
          "clip": True}
TILES = {"overlap": 0.25, "object_share": 1.0, "merge_ios": 0.5}


def test_windows_cover_the_image_with_the_overlap_and_end_flush():
    cuts = windows(400, 250, (160, 160), 0.25)
    xs, ys = sorted({int(c[0]) for c in cuts}), sorted({int(c[1]) for c in cuts})
    assert xs == [0, 120, 240] and ys == [0, 90]  # stride 120; the last flush with the far edge
    assert (cuts[:, 2] - cuts[:, 0] == 160).all() and (cuts[:, 3] - cuts[:, 1] == 160).all()
    covered = np.zeros((250, 400), bool)
    for x0, y0, x1, y1 in cuts:
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    small = windows(100, 60, (160, 160), 0.25)  # smaller than a tile: one window, padded by cut()
    assert small.tolist() == [[0, 0, 160, 160]]
    pixels = np.zeros((60, 100, 3), np.uint8)
    tile = cut(pixels, small[0], 114)
    assert tile.shape == (160, 160, 3) and (tile[:60, :100] == 0).all() and (tile[60:] == 114).all()
    with pytest.raises(ValueError, match="overlap"):
        windows(400, 250, (160, 160), 1.0)


def visible_fraction(box, window) -> float:
    ix = max(0.0, min(box[2], window[2]) - max(box[0], window[0]))
    iy = max(0.0, min(box[3], window[3]) - max(box[1], window[1]))
    return ix * iy / ((box[2] - box[0]) * (box[3] - box[1]))


def test_a_tile_keeps_exactly_the_boxes_that_pass_the_visibility_rule():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    corners = rng.uniform(0, 370, (60, 2)) * [1, 0.75]
    boxes = np.concatenate([corners, corners + rng.uniform(8, 30, (60, 2))], axis=1).astype(np.float32)
    example = Example(image, boxes, np.arange(60) % 3)
    checked_cut = 0
    for window in windows(400, 300, (96, 96), 0.25):
        tile = tile_example(example, window, POLICY, 114)
        assert tile.image.shape == (96, 96, 3)
        assert (tile.image == cut(image, window, 114)).all()
        expected = []
        for box, label in zip(boxes, example.labels):
            clipped = np.clip(box - np.tile(window[:2], 2), 0, 96)
            w, h = clipped[2] - clipped[0], clipped[3] - clipped[1]
            if visible_fraction(box, window) >= POLICY["min_visibility"] and w * h >= 16 and min(w, h) >= 2:
                expected.append((*np.round(clipped, 2), int(label)))
                checked_cut += visible_fraction(box, window) < 1
        found = sorted((*np.round(b, 2), int(lab)) for b, lab in zip(tile.boxes, tile.labels))
        assert len(found) == len(expected)
        assert np.asarray(found) == pytest.approx(np.asarray(sorted(expected)).reshape(-1, 5), abs=0.02)
    assert checked_cut > 5  # boxes cut by a tile border were among those checked


def test_training_crops_are_tiles_at_the_images_own_scale_around_an_object():
    cfg = {"input_size": [64, 64], "resize": "tile", "pad_fill": 114, "boxes": POLICY, "tiles": TILES,
           "train": {}}
    pipeline = build_pipeline(cfg, train=True)
    image = np.full((400, 600, 3), 50, np.uint8)
    image[300:320, 500:530] = 250  # the only object
    example = Example(image, np.array([[500, 300, 530, 320]], np.float32), np.array([1]))
    for seed in range(10):
        out = augment(pipeline, example, seed)
        assert out.image.shape == (64, 64, 3)
        assert out.labels.tolist() == [1]
        x0, y0, x1, y1 = out.boxes[0]
        assert (x1 - x0, y1 - y0) == pytest.approx((30, 20), abs=0.01)  # not resized
        x0, y0, x1, y1 = (round(float(v)) for v in out.boxes[0])
        assert (out.image[y0:y1, x0:x1] == 250).all() and (out.image == 250).sum() == 20 * 30 * 3
    with pytest.raises(ValueError, match="tiles"):
        build_pipeline({**cfg, "tiles": None}, train=True)


def tile_truth(whole_boxes, window, scores):
    """A stand-in detector: the visible part of each object in the tile, with the given score."""
    found = []
    for box, score in zip(whole_boxes, scores):
        part = np.clip(np.asarray(box, np.float32) - np.tile(window[:2], 2), 0, [window[2] - window[0],
                                                                               window[3] - window[1]] * 2)
        if (part[2] - part[0]) * (part[3] - part[1]) > 0:
            found.append((part, score(window)))
    return {"boxes": np.array([f[0] for f in found], np.float32).reshape(-1, 4),
            "scores": np.array([f[1] for f in found], np.float32), "labels": np.zeros(len(found), np.int64)}


def test_an_object_cut_by_a_tile_border_comes_out_once_and_whole():
    image = np.zeros((160, 320, 3), np.uint8)  # tiles x = 0-160 and 120-280 and 160-320
    objects = [[140, 40, 175, 70],  # crosses the first tile's right border (x 160)
               [20, 100, 44, 124], [250, 100, 274, 124]]  # wholly inside one tile each
    # the cut part (first tile) scores higher than the whole object: the merged box must still be whole
    score = {0: 0.9, 120: 0.6, 160: 0.7}

    def detect_tiles(tiles):
        starts = iter(detect_tiles.windows)
        return [tile_truth(objects, next(starts), [lambda w: score[int(w[0])]] * 3) for _ in tiles]

    detect_tiles.windows = windows(320, 160, (160, 160), 0.25)
    found = sliced_detections(image, (160, 160), 0.25, 114, 0.5, 100, detect_tiles)
    assert len(found["boxes"]) == 3
    assert sorted(np.round(found["boxes"]).tolist()) == sorted(objects)
    # IoU alone (plain NMS) would have kept two boxes for the first object
    by_nms = sum(len(tile_truth(objects, w, [lambda _: 1.0] * 3)["boxes"]) for w in detect_tiles.windows)
    assert by_nms > 3


def test_merging_never_inflates_a_whole_box_and_never_merges_within_a_tile():
    boxes = np.array([[100, 100, 120, 120],   # tile 0: a whole object, best score
                      [90, 90, 150, 150],     # tile 1: a low-scored box around it
                      [104, 104, 118, 118],   # tile 0: a second object inside the first, same tile
                      [300, 300, 320, 320]], np.float32)
    scores = np.array([0.9, 0.2, 0.5, 0.8], np.float32)
    result = merge(boxes, scores, np.zeros(4, np.int64), np.array([0, 1, 0, 2]), np.zeros(4, bool), 0.5, 100)
    assert result["boxes"].tolist() == [[100, 100, 120, 120], [300, 300, 320, 320], [104, 104, 118, 118]]
    assert result["scores"].tolist() == pytest.approx([0.9, 0.8, 0.5])
    # other classes never merge
    labels = np.array([0, 1, 0, 0])
    assert len(merge(boxes, scores, labels, np.array([0, 1, 0, 2]), np.zeros(4, bool), 0.5, 100)["boxes"]) == 4


def test_evaluation_counts_and_warns_of_objects_the_letterbox_shrinks_away(capsys):
    from types import SimpleNamespace

    from pipeline.detect.evaluate import unscored_objects

    data = SimpleNamespace(samples={"val": [SimpleNamespace(boxes=[[0, 0, 9, 9]] * 3),
                                            SimpleNamespace(boxes=[[0, 0, 90, 90]])]})
    assert unscored_objects(data, "val", {"objects": 1}) == 3
    assert "3 of 4 val objects" in capsys.readouterr().out
    assert unscored_objects(data, "val", {"objects": 4}) == 0
    assert capsys.readouterr().out == ""
