"""Property tests: boxes follow the pixels, for each geometric transform and each preset.

For every case a random image gets random boxes; each box is also a filled mask pushed through
the same albumentations call. Each output box must equal the bounding rectangle of its
transformed mask within 1 px, carry its own label, and vanish only when its mask did.
"""

from __future__ import annotations

import zlib

import albumentations as A
import numpy as np
import pytest

from pipeline.augment.build import bbox_params, build_pipeline, resize_transforms
from pipeline.config import compose
from tests.augment.oracle import box_errors, ellipse_mask, mask_box, random_case, rect_mask, run

CASES = 200
POLICY = {"format": "pascal_voc", "min_visibility": 0.3, "min_area": 16, "min_width": 2, "min_height": 2, "clip": True}


def compose_with_boxes(*transforms, policy=POLICY) -> A.Compose:
    return A.Compose(list(transforms), bbox_params=bbox_params(policy))


GEOMETRIC = {
    "hflip": lambda: [A.HorizontalFlip(p=1)],
    "vflip": lambda: [A.VerticalFlip(p=1)],
    "shift": lambda: [A.Affine(translate_percent=(-0.25, 0.25), p=1)],
    "scale": lambda: [A.Affine(scale=(0.6, 1.5), p=1)],
    "shift_scale": lambda: [A.Affine(translate_percent=(-0.15, 0.15), scale=(0.75, 1.25), p=1)],
    "bbox_safe_crop": lambda: [A.BBoxSafeRandomCrop(erosion_rate=0.0, p=1)],
    "bbox_safe_zoom": lambda: [A.RandomSizedBBoxSafeCrop(height=120, width=160, p=1)],
    "random_crop": lambda: [A.RandomCrop(height=60, width=60, p=1)],
    "letterbox": lambda: resize_transforms((128, 96), "letterbox"),
    "stretch": lambda: resize_transforms((100, 140), "stretch"),
}


def scale_of_areas(case, out) -> float | None:
    """How much the transform scaled areas: the median ratio of output to input mask area over the
    boxes kept whole (their masks clear of the output's border); None when no box was kept whole."""
    height, width = out["image"].shape[:2]
    ratios = []
    for index in out["labels"].tolist():
        mask = out["masks"][index]
        ys, xs = np.nonzero(mask)
        if len(xs) and xs.min() > 0 and ys.min() > 0 and xs.max() < width - 1 and ys.max() < height - 1:
            ratios.append(mask.sum() / max(1, case.masks[index].sum()))
    return float(np.median(ratios)) if ratios else None


def check_cases(pipeline: A.Compose, name: str, cases: int = CASES, tolerance: float = 1.0,
                rotated: bool = False) -> int:
    """Run ``cases`` random cases; fail listing the first bad ones. Returns the boxes checked."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    failures, checked = [], 0
    for i in range(cases):
        case = random_case(rng)
        out = run(pipeline, case, seed=i)
        errors = box_errors(out, tolerance, rotated)
        # a box may disappear only when too little of it stays visible (the policy's min_visibility)
        area_scale = scale_of_areas(case, out)
        for index in set(range(len(case.boxes))) - set(out["labels"].tolist()):
            if area_scale is None or out["masks"][index].sum() <= 4 * POLICY["min_area"]:
                continue
            visible = out["masks"][index].sum() / (case.masks[index].sum() * area_scale)
            # rotated boxes are judged by their enclosing rectangle, which shows less of itself than the mask
            limit = 0.95 if rotated else POLICY["min_visibility"] + 0.1
            if visible > limit:
                errors.append(f"box {index} dropped although {visible:.0%} of it is visible")
        checked += len(out["labels"])
        failures += [f"case {i}: {e}" for e in errors]
    assert not failures, f"{name}: {len(failures)} problems, e.g.\n" + "\n".join(failures[:8])
    return checked


@pytest.mark.parametrize("name", sorted(GEOMETRIC))
def test_geometric_transform_moves_boxes_with_pixels(name):
    checked = check_cases(compose_with_boxes(*GEOMETRIC[name]()), name)
    assert checked > CASES // 2  # boxes were really exercised, not all dropped


PRESETS = [("detector", "ssd"), ("detector", "light"), ("detector", "none"),
           ("classifier", "patches"), ("classifier", "none")]


@pytest.mark.parametrize("task,preset", PRESETS)
def test_preset_pipeline_moves_boxes_with_pixels(task, preset):
    """Every preset, as the augment stage builds it (train mode, all transforms forced on).

    The mask is resampled (nearest neighbour) twice, by the affine warp and by the final
    resize, so the oracle allows 1 px per resampling; rotated boxes cut by the border are
    checked for containment (see oracle.box_errors).
    """
    size = "[160,160]" if task == "detector" else "[64,64]"  # auto needs the data
    cfg = compose([f"augment/{task}={preset}", f"augment.{task}.input_size={size}"]).augment[task]
    pipeline = build_pipeline(cfg, train=True)
    if pipeline.processors.get("bboxes") is None:  # classifier presets: prove their geometry too
        pipeline = A.Compose(list(pipeline.transforms), bbox_params=bbox_params(POLICY))
    for t in pipeline.transforms:
        t.p = 1.0
    rotated = any(isinstance(t, A.Affine) and max(map(abs, t.rotate)) > 0 for t in pipeline.transforms)
    assert check_cases(pipeline, f"{task}/{preset}", tolerance=2.0, rotated=rotated) > CASES


@pytest.mark.parametrize("cut", ["crop", "shift"])
def test_visibility_policy_decides_which_boxes_are_dropped(cut):
    """Under a pure crop or shift (scale 1) the visible fraction is the mask's surviving fraction.

    albumentations applies min_visibility to each transform in turn, relative to the box before
    that transform: two cutting transforms in one pipeline compound (README, augmentation).
    """
    rng = np.random.default_rng(7)
    transform = (A.RandomCrop(height=64, width=64, p=1) if cut == "crop"
                 else A.Affine(translate_percent=(-0.4, 0.4), p=1))
    pipeline = compose_with_boxes(transform)
    decided = dropped = 0
    for i in range(CASES):
        case = random_case(rng, size=(64, 160))
        out = run(pipeline, case, seed=i)
        kept = set(out["labels"].tolist())
        for index, box in enumerate(case.boxes):
            area_in = (box[2] - box[0]) * (box[3] - box[1])
            visible_area = float(out["masks"][index].sum())
            fraction = visible_area / area_in
            slack = (box[2] - box[0] + box[3] - box[1]) / area_in  # one pixel row and column
            visibility, min_area = POLICY["min_visibility"], POLICY["min_area"]
            clear_keep = fraction > visibility + slack and visible_area > min_area + area_in * slack
            clear_drop = fraction < visibility - slack or visible_area < min_area - area_in * slack
            if clear_keep:
                assert index in kept, f"case {i}: box {index} dropped at {fraction:.2f} visible"
            elif clear_drop:
                assert index not in kept, f"case {i}: box {index} kept at {fraction:.2f} visible"
                dropped += 1
            decided += clear_keep or clear_drop
        assert not box_errors(out), box_errors(out)
    assert decided > CASES and dropped > 20


ROTATION = 3.0  # degrees, the ssd preset's limit


def test_rotation_box_growth_is_bounded():
    """largest_box: the box of a rotated box is exact for rectangles, and grows for round objects.

    Measured over 200 cases (printed with -s): the returned box always contains the rotated
    ellipse inscribed in the original box; its area exceeds the ellipse's tight box by at most
    the analytic bound for the sampled shapes at 3 degrees, plus one pixel per side.
    """
    rng = np.random.default_rng(3)
    pipeline = compose_with_boxes(A.Affine(rotate=(-ROTATION, ROTATION), rotate_method="largest_box", p=1),
                                  policy={**POLICY, "min_visibility": 0.0, "min_area": 0.0})
    growths, theta = [], np.deg2rad(ROTATION)
    for i in range(CASES):
        case = random_case(rng, max_boxes=3, size=(96, 200))
        ellipses = [ellipse_mask(case.image.shape, b) for b in case.boxes]
        out = run(pipeline, case, seed=i, extra_masks=ellipses)
        assert not box_errors(out), (i, box_errors(out))
        k = len(case.boxes)
        for box, index in zip(out["bboxes"], out["labels"]):
            tight = mask_box(out["masks"][k + index])
            height, width = case.image.shape[:2]
            if tight is None or (tight[[0, 1]] <= 0).any() or tight[2] >= width or tight[3] >= height:
                continue  # clipped by the border: growth is not defined
            assert (box[:2] <= tight[:2] + 1).all() and (box[2:] >= tight[2:] - 1).all(), "box must contain the object"
            a, b = (case.boxes[index][2] - case.boxes[index][0]) / 2, (case.boxes[index][3] - case.boxes[index][1]) / 2
            cos, sin = np.cos(theta), np.sin(theta)
            bound_w = (a * cos + b * sin) / np.sqrt((a * cos) ** 2 + (b * sin) ** 2)
            bound_h = (b * cos + a * sin) / np.sqrt((b * cos) ** 2 + (a * sin) ** 2)
            w, h = box[2] - box[0], box[3] - box[1]
            tw, th = tight[2] - tight[0], tight[3] - tight[1]
            assert w <= tw * bound_w + 2 and h <= th * bound_h + 2, (i, box, tight)
            growths.append(w * h / (tw * th) - 1)
    growths = np.array(growths)
    print(f"rotation +-{ROTATION} deg: box area over the object's tight box: median {np.median(growths):+.1%}, "
          f"95% {np.percentile(growths, 95):+.1%}, max {growths.max():+.1%} ({len(growths)} boxes)")
    assert len(growths) > CASES


def test_image_without_boxes_and_label_alignment_after_drops():
    pipeline = build_pipeline(compose(["augment.detector.input_size=[160,160]"]).augment.detector, train=True)
    for t in pipeline.transforms:
        t.p = 1.0
    image = np.full((90, 120, 3), 128, np.uint8)
    out = pipeline(image=image, bboxes=np.zeros((0, 4)), labels=np.zeros((0,), int))
    assert out["image"].shape == (160, 160, 3) and len(out["bboxes"]) == 0
    # a box far outside a crop is dropped together with its label; the others keep theirs
    crop = compose_with_boxes(A.Crop(x_min=0, y_min=0, x_max=60, y_max=60))
    boxes = np.array([[5, 5, 25, 25], [70, 70, 110, 85], [30, 10, 50, 40]], float)
    out = crop(image=image, bboxes=boxes, labels=np.array([3, 1, 2]))
    assert np.rint(out["labels"]).astype(int).tolist() == [3, 2]
    assert np.allclose(out["bboxes"], [[5, 5, 25, 25], [30, 10, 50, 40]])


def test_rect_mask_matches_box():
    assert mask_box(rect_mask((20, 30), [3, 4, 10, 12])).tolist() == [3, 4, 10, 12]
