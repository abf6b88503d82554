"""A detector bundle in `predict` (torch-free): boxes after numpy NMS, COCO-style records."""

from __future__ import annotations

import numpy as np

from pipeline.predict import draw
from pipeline.predict.bundled import IMAGE_INPUT, Bundled
from pipeline.predict.postprocess import SETTINGS, detections, settings
from pipeline.predict.preprocess import batch, fit_batch
from pipeline.predict.tiles import sliced_detections

SHOWN_SCORE = 0.3  # the objects a line names and a picture draws


def detect_sliced(bundle, images: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Per image: the boxes found in its overlapping tiles, merged across tiles."""
    pre, post = bundle.spec["preprocessing"], settings(bundle.spec["postprocessing"])
    size, tiles = tuple(pre["input_size"]), pre["tiles"]

    def detect_tiles(parts: list[np.ndarray]) -> list[dict]:
        scores, boxes = bundle.run(batch(parts))
        return [detections(s, b, size, **post) for s, b in zip(scores, boxes)]

    return [sliced_detections(px, size, float(tiles["overlap"]), int(pre["pad_fill"]), float(tiles["merge_ios"]),
                              int(post["max_detections"]), detect_tiles) for px in images]


def detect(bundle, images: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Per image: boxes (xyxy, the image's own pixels), scores, labels."""
    if bundle.spec["preprocessing"]["resize"] == "tile":
        return detect_sliced(bundle, images)
    size = tuple(bundle.spec["preprocessing"]["input_size"])
    inputs, placements = fit_batch(images, bundle.spec["preprocessing"])
    scores, boxes = bundle.run(inputs)
    out = []
    for placement, s, b, px in zip(placements, scores, boxes, images):
        found = detections(s, b, size, **settings(bundle.spec["postprocessing"]))
        h, w = px.shape[:2]
        found["boxes"] = np.clip(placement.to_image(found["boxes"]), 0, [w, h, w, h]).astype(np.float32)
        out.append(found)
    return out


class DetectorBundle(Bundled):
    required = (*IMAGE_INPUT, *(f"postprocessing.{key}" for key in SETTINGS))
    json_layout = "list"  # COCO results: one record per box
    picture = "boxes"

    def infer(self, bundle, images):
        return detect(bundle, images)

    def line(self, name, found, bundle):
        strong = [f"{bundle.labels[int(lab)]} {s:.2f}"
                  for s, lab in zip(found["scores"], found["labels"]) if s >= SHOWN_SCORE]
        shown = f": {', '.join(strong)}" if strong else ""
        return f"{name}: {len(strong)} objects (score >= {SHOWN_SCORE}){shown}"

    def records(self, path, found, bundle, number):
        for box, score, label in zip(found["boxes"], found["scores"], found["labels"]):
            x0, y0, x1, y1 = (round(float(v), 2) for v in box)
            yield {"image_id": number, "file_name": path, "category_id": int(label) + 1,
                   "category": bundle.labels[int(label)], "bbox": [x0, y0, round(x1 - x0, 2), round(y1 - y0, 2)],
                   "score": round(float(score), 5)}, None

    def draw(self, pixels, found, bundle):
        return draw.boxes_picture(pixels, found, bundle.labels, SHOWN_SCORE)

    def int8_quality(self, bundle, samples, images, manifest):
        import torch  # the export's side: torchmetrics' mAP, as the evaluation computes it

        from pipeline.detect.metrics import detection_metrics

        preds = [{k: torch.from_numpy(np.asarray(v)) for k, v in f.items()} for f in detect(bundle, images)]
        truth = [{"boxes": torch.tensor(s.boxes, dtype=torch.float32).reshape(-1, 4),
                  "labels": torch.tensor(s.box_labels, dtype=torch.int64)} for s in samples]
        return {"score": detection_metrics(preds, truth, bundle.labels)["map_50"] or 0.0}

    def int8_compare(self, fp32, int8):
        return {"metric": "map_50", "fp32": fp32["score"], "int8": int8["score"], "drop": fp32["score"] - int8["score"]}


BUNDLED = DetectorBundle()
