"""A multi-label bundle in `predict` (torch-free): the classes above their thresholds."""

from __future__ import annotations

import numpy as np

from pipeline.predict import draw
from pipeline.predict.bundled import IMAGE_INPUT, Bundled, probabilities


def tag(bundle, images: list[np.ndarray]) -> list[list[tuple[str, float]]]:
    """Per image, (class, probability) of each class at or above its threshold, most likely first."""
    probs = probabilities(bundle, images)
    thresholds = np.asarray(bundle.spec["postprocessing"]["thresholds"], np.float32)
    return [[(bundle.labels[c], float(p[c])) for c in np.argsort(-p) if p[c] >= thresholds[c]] for p in probs]


def listed(found: list[tuple[str, float]], digits: int = 3) -> str:
    return ", ".join(f"{name} {p:.{digits}f}" for name, p in found)


class MultilabelBundle(Bundled):
    required = (*IMAGE_INPUT, "postprocessing.thresholds")

    def infer(self, bundle, images):
        return tag(bundle, images)

    def line(self, name, found, bundle):
        return f"{name}: {len(found)} classes above threshold{': ' if found else ''}{listed(found)}"

    def records(self, path, found, bundle, number):
        yield dict(found), path

    def draw(self, pixels, found, bundle):
        return draw.caption_picture(pixels, listed(found) or "-")

    def int8_quality(self, bundle, samples, images, manifest):
        probs = probabilities(bundle, images)
        return {"decisions": probs >= np.asarray(bundle.spec["postprocessing"]["thresholds"], np.float32)}

    def int8_compare(self, fp32, int8):
        agreement = float(np.mean(fp32["decisions"] == int8["decisions"]))
        return {"metric": "decision_agreement", "fp32": 1.0, "int8": agreement, "drop": 1.0 - agreement}


BUNDLED = MultilabelBundle()
