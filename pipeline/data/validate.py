"""Turn each :class:`Record` into an accepted :class:`Sample` or a :class:`Rejection`.

Policy (all from the ``data`` config):

* undecodable / truncated images, decompression bombs: rejected;
* grayscale, palette, RGBA (alpha dropped), CMYK and 16-bit images: converted to 8-bit RGB;
* EXIF orientation: pixels are turned to the displayed orientation and boxes follow them.
  Boxes are taken to be drawn on the *stored* pixels when the annotation's declared size
  equals the stored size but not the displayed one, on the *displayed* pixels when it
  equals the displayed size; otherwise ``exif_box_frame`` decides (``auto`` means displayed,
  as CVAT, Roboflow and Ultralytics draw them);
* a declared size that matches the image in neither orientation: rejected;
* boxes: inverted or zero-area boxes are rejected, boxes past the border by at most
  ``boxes.clip_tolerance`` px are clipped, further out they are rejected; boxes narrower
  than ``boxes.min_size`` px are rejected. A bad box rejects its whole image, because
  keeping the image without it would teach a detector that the object is background;
* unknown class names: rejected (fix the label or list the class in ``data.classes``);
* duplicates (same decoded pixels): with ``duplicates: reject`` the first by key is kept and
  the others rejected; with ``keep_together`` all copies are kept (their annotations may
  differ) and the split puts them in the same split, so nothing leaks between splits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from pipeline.boxes import cxcywh_norm_to_xyxy, exif_transform_boxes
from pipeline.data.records import Record, Rejection, Sample
from pipeline.io.images import DEFAULT_MAX_PIXELS, DecodedImage, ImageError, content_hash, read_image


@dataclass
class Policy:
    clip_tolerance: float = 2.0
    min_size: float = 1.0
    exif_box_frame: str = "auto"  # auto | displayed | stored
    max_image_pixels: int = DEFAULT_MAX_PIXELS
    duplicates: str = "reject"  # reject | keep_together

    @classmethod
    def from_config(cls, cfg) -> Policy:
        boxes = cfg.boxes or {}
        frame = cfg.exif_box_frame
        if frame not in ("auto", "displayed", "stored"):
            raise ValueError(f"data.exif_box_frame={frame!r}; use auto, displayed or stored")
        duplicates = cfg.duplicates
        if duplicates not in ("reject", "keep_together"):
            raise ValueError(f"data.duplicates={duplicates!r}; use reject or keep_together")
        return cls(boxes.clip_tolerance, boxes.min_size, frame, cfg.max_image_pixels, duplicates)


@dataclass
class Outcome:
    accepted: list[Sample] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    converted_modes: dict[str, int] = field(default_factory=dict)
    exif_rotated: int = 0
    clipped_boxes: int = 0
    ignored_annotations: int = 0
    duplicates_kept: int = 0
    warnings: list[str] = field(default_factory=list)


class Reject(Exception):
    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code


def decode(record: Record, policy: Policy) -> DecodedImage:
    if record.pixels is not None:
        h, w = record.pixels.shape[:2]
        return DecodedImage(record.pixels, (w, h), 1, "RGB", None)
    try:
        return read_image(record.image, policy.max_image_pixels)
    except ImageError as exc:
        raise Reject(exc.code, str(exc)) from exc


def box_frame(record: Record, image: DecodedImage, policy: Policy) -> str:
    """Which pixels the record's boxes were drawn on: "stored" or "displayed"."""
    stored, shown = image.stored_size, image.size
    declared = record.declared_size
    if declared is not None and declared not in (stored, shown):
        raise Reject("size_mismatch", (
            f"{record.annotation}: declares image size {declared[0]}x{declared[1]} but {record.key} is "
            f"{stored[0]}x{stored[1]}; the boxes may belong to another version of the image"))
    if image.orientation == 1:
        return "displayed"
    if policy.exif_box_frame != "auto":
        return policy.exif_box_frame
    if declared is not None and stored != shown:
        return "stored" if declared == stored else "displayed"
    return "displayed"


def check_boxes(record: Record, image: DecodedImage, classes: dict[str, int],
                policy: Policy) -> tuple[np.ndarray, list[int], int]:
    """Boxes in displayed pixels (clipped), their class ids, and how many were clipped."""
    where = f"{record.annotation} (image {record.key})" if record.annotation else record.key
    unknown = sorted({c for c in record.box_classes if c not in classes})
    if unknown:
        raise Reject("unknown_class", (
            f"{where}: unknown class {', '.join(map(repr, unknown))} (known: {sorted(classes)}); "
            "fix the label or add the class to data.classes"))
    frame = box_frame(record, image, policy)
    fw, fh = image.stored_size if frame == "stored" else image.size
    boxes = np.asarray(record.boxes, dtype=np.float64).reshape(-1, 4)
    if record.normalized_boxes:
        boxes = cxcywh_norm_to_xyxy(boxes, fw, fh)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        label = f"{where}: box {i} [{x1:g}, {y1:g}, {x2:g}, {y2:g}] ({record.box_classes[i]})"
        if x2 < x1 or y2 < y1:
            raise Reject("inverted_box", f"{label} is inverted (max corner before min corner); fix the annotation")
        if x2 == x1 or y2 == y1:
            raise Reject("zero_area_box", f"{label} has zero area; fix or delete the annotation")
        tol = policy.clip_tolerance
        if x1 < -tol or y1 < -tol or x2 > fw + tol or y2 > fh + tol:
            raise Reject("box_outside_image", (
                f"{label} extends more than {tol:g} px outside the {fw}x{fh} image; fix the annotation "
                "or raise data.boxes.clip_tolerance"))
    clipped = np.clip(boxes, 0, [fw, fh, fw, fh])
    n_clipped = int(np.any(clipped != boxes, axis=1).sum())
    if frame == "stored":
        clipped = exif_transform_boxes(clipped, image.orientation, *image.stored_size)
    for i, (x1, y1, x2, y2) in enumerate(clipped):
        if min(x2 - x1, y2 - y1) < policy.min_size:
            raise Reject("degenerate_box", (
                f"{where}: box {i} ({record.box_classes[i]}) is under {policy.min_size:g} px wide or tall "
                "inside the image; fix it or lower data.boxes.min_size"))
    return clipped, [classes[c] for c in record.box_classes], n_clipped


def validate_record(record: Record, task: str, classes: dict[str, int],
                    policy: Policy) -> tuple[Sample, DecodedImage, int]:
    if record.problem is not None:
        raise Reject(*record.problem)
    if record.image is None and record.pixels is None:
        raise Reject("annotation_without_image", f"{record.key}: no image for this annotation")
    image = decode(record, policy)
    width, height = image.size
    sample = Sample(id=record.key, file="", width=width, height=height, split=record.split,
                    sha256=content_hash(image.pixels), origin=record.key)
    n_clipped = 0
    if task == "classification":
        if record.label not in classes:
            raise Reject("unknown_class", f"{record.key}: unknown class {record.label!r} (known: {sorted(classes)})")
        sample.label = classes[record.label]
    elif task == "multilabel":
        unknown = [name for name in record.labels if name not in classes]
        if unknown:
            raise Reject("unknown_class", f"{record.key}: unknown class(es) {unknown} (known: {sorted(classes)}); "
                         "fix the label or add the class to data.classes")
        sample.labels = sorted(classes[name] for name in record.labels)
    else:
        boxes, labels, n_clipped = check_boxes(record, image, classes, policy)
        sample.boxes, sample.box_labels = boxes.tolist(), labels
    return sample, image, n_clipped


def validate(records: Iterable[Record], task: str, class_names: list[str], policy: Policy,
             sink: Callable[[Sample, DecodedImage, Record], None] = lambda *_: None,
             progress: Callable[[Iterable], Iterable] = lambda x: x) -> Outcome:
    """Check every record; each one ends in ``accepted`` or ``rejected``, in key order.

    ``sink`` receives each accepted sample with its decoded image (to store it), so the
    pixels of a whole dataset are never held in memory at once.
    """
    classes = {name: i for i, name in enumerate(class_names)}
    outcome, seen = Outcome(), {}
    for record in progress(sorted(records, key=lambda r: r.key)):
        outcome.ignored_annotations += record.ignored_annotations
        outcome.warnings += record.warnings
        try:
            sample, image, n_clipped = validate_record(record, task, classes, policy)
            original = seen.get(sample.sha256)
            if original is not None:
                if policy.duplicates == "reject":
                    raise Reject("duplicate_image", (
                        f"{record.key}: same pixels as {original.id}; keep one copy, or set "
                        "data.duplicates=keep_together to keep both in one split"))
                if sample.split is not None and sample.split != original.split:
                    raise Reject("duplicate_across_splits", (
                        f"{record.key}: same pixels as {original.id} but the source puts it in split "
                        f"{sample.split!r}, not {original.split!r}; that would leak between splits"))
                sample.duplicate_of = original.id
        except Reject as exc:
            where = str(record.image) if record.image else record.annotation
            outcome.rejected.append(Rejection(record.key, exc.code, str(exc), where))
            continue
        seen.setdefault(sample.sha256, sample)
        outcome.duplicates_kept += sample.duplicate_of is not None
        outcome.clipped_boxes += n_clipped
        outcome.exif_rotated += image.orientation != 1
        if image.mode != "RGB" and record.pixels is None:
            outcome.converted_modes[image.mode] = outcome.converted_modes.get(image.mode, 0) + 1
        sink(sample, image, record)
        outcome.accepted.append(sample)
    return outcome
