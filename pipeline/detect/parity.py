"""Do the exported detector's detections match PyTorch's? A comparison that holds on dense scenes.

Raw outputs of the two runtimes differ in the last float digits. After post-processing that can
swap two candidates of nearly equal score, or move one across the score threshold or the
``max_detections`` cut, or let the other one of two overlapping boxes win NMS, so "the same
list" is the wrong test. Here detections are matched one to one by class and IoU; every detection
whose score is clear of the threshold and the cut (by ``MARGIN``) must have its match, with the
same box (IoU >= ``BOX_IOU``) and score (within ``SCORE_TOLERANCE``), unless the other runtime
computed that very candidate and NMS dropped it (a tie); those near a boundary are counted apart,
not failed.
No library compares detection lists this way, hence this module.
"""

from __future__ import annotations

import numpy as np

from pipeline.predict.postprocess import iou_one_to_many

MARGIN = 1e-3           # score distance from the threshold or the cut under which a detection may differ
BOX_IOU = 0.99          # a match's boxes overlap at least this much
SCORE_TOLERANCE = 1e-4  # a match's scores differ at most this much


def match(reference: dict, candidate: dict) -> list[tuple[int, int]]:
    """One-to-one (reference index, candidate index) pairs of the same class with IoU >= BOX_IOU,
    best reference score first, each taking its best-overlapping free candidate."""
    pairs, free = [], np.ones(len(candidate["boxes"]), dtype=bool)
    for i in np.argsort(-reference["scores"], kind="stable"):
        options = np.flatnonzero(free & (candidate["labels"] == reference["labels"][i]))
        if not len(options):
            continue
        iou = iou_one_to_many(reference["boxes"][i], candidate["boxes"][options])
        best = int(np.argmax(iou))
        if iou[best] >= BOX_IOU:
            pairs.append((int(i), int(options[best])))
            free[options[best]] = False
    return pairs


def clear_of_boundaries(found: dict, score_threshold: float, max_detections: int) -> np.ndarray:
    """Which detections no rounding could have dropped: above the threshold, and above the lowest
    kept score when the list is full (the cut), each by more than MARGIN."""
    cut = score_threshold
    if len(found["scores"]) >= max_detections:
        cut = max(cut, float(found["scores"].min()))
    return found["scores"] > cut + MARGIN


def computed_by_other(lone: np.ndarray, found: dict, raw: dict | None) -> np.ndarray:
    """Which of the ``lone`` detections the other runtime computed too (a raw candidate of the same
    class with IoU >= BOX_IOU and a score within SCORE_TOLERANCE) and then dropped in
    post-processing: an NMS tie between near-equal scores, which either runtime may break."""
    if raw is None:
        return np.zeros(len(lone), dtype=bool)
    same = [(iou_one_to_many(found["boxes"][i], raw["boxes"]) >= BOX_IOU)
            & (np.abs(raw["scores"][:, found["labels"][i]] - found["scores"][i]) <= SCORE_TOLERANCE) for i in lone]
    return np.array([bool(s.any()) for s in same], dtype=bool)


def compare(reference: list[dict], candidate: list[dict], score_threshold: float, max_detections: int,
            raw: tuple[list[dict], list[dict]] | None = None) -> dict:
    """The comparison of two runtimes' detections (per image: boxes, scores, labels as numpy);
    ``raw``: each runtime's candidates before post-processing (per image: boxes A x 4 in pixels,
    scores A x K), which let an NMS tie count as a boundary case."""
    raw_reference, raw_candidate = raw if raw is not None else ([None] * len(reference), [None] * len(candidate))
    report = {"detections": 0, "candidate_detections": 0, "matched": 0, "unmatched": 0,
              "unmatched_near_boundary": 0, "box_max_abs_diff_px": 0.0, "score_max_abs_diff": 0.0,
              "limits": {"margin": MARGIN, "box_iou": BOX_IOU, "score_tolerance": SCORE_TOLERANCE}}
    for ref, got, ref_raw, got_raw in zip(reference, candidate, raw_reference, raw_candidate):
        pairs = match(ref, got)
        report["detections"] += len(ref["scores"])
        report["candidate_detections"] += len(got["scores"])
        report["matched"] += len(pairs)
        for found, other_raw, matched in ((ref, got_raw, {i for i, _ in pairs}), (got, ref_raw, {j for _, j in pairs})):
            lone = np.setdiff1d(np.arange(len(found["scores"])), list(matched)).astype(np.int64)
            required = clear_of_boundaries(found, score_threshold, max_detections)[lone]
            required &= ~computed_by_other(lone, found, other_raw)
            report["unmatched"] += int(required.sum())
            report["unmatched_near_boundary"] += int((~required).sum())
        if pairs:
            i, j = (np.array(side) for side in zip(*pairs))
            report["box_max_abs_diff_px"] = max(report["box_max_abs_diff_px"],
                                                float(np.abs(ref["boxes"][i] - got["boxes"][j]).max()))
            report["score_max_abs_diff"] = max(report["score_max_abs_diff"],
                                               float(np.abs(ref["scores"][i] - got["scores"][j]).max()))
    return report


def failures(report: dict) -> list[str]:
    """Each figure of ``report`` past its limit, as 'name value > limit'."""
    found = []
    if report["unmatched"]:
        found.append(f"unmatched detections {report['unmatched']} > 0 (of {report['detections']}; "
                     f"IoU >= {BOX_IOU}, same class, scores clear of the threshold and cut by {MARGIN})")
    if report["score_max_abs_diff"] > SCORE_TOLERANCE:
        found.append(f"score_max_abs_diff {report['score_max_abs_diff']:.3g} > {SCORE_TOLERANCE}")
    return found
