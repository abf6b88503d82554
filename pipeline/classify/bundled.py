"""A classifier bundle in `predict` (torch-free): class probabilities, one line per image."""

from __future__ import annotations

import numpy as np

from pipeline.predict import draw
from pipeline.predict.bundled import Bundled, probabilities


def format_line(name: str, probs: np.ndarray, classes: list[str]) -> str:
    """The classic one-line-per-image format: ``name is a <best> c1=p1% c2=p2% ...``."""
    best = classes[int(probs.argmax())]
    article = "an" if best[:1].lower() in "aeiou" else "a"
    shares = " ".join(f"{c}={p * 100:.3f}%" for c, p in zip(classes, probs))
    return f"{name} is {article} {best} {shares}"


class ClassifierBundle(Bundled):
    def infer(self, bundle, images):
        return list(probabilities(bundle, images))

    def line(self, name, probs, bundle):
        return format_line(name, probs, bundle.labels)

    def records(self, path, probs, bundle, number):
        yield {c: float(p) for c, p in zip(bundle.labels, probs)}, path

    def draw(self, pixels, probs, bundle):
        return draw.classes_picture(pixels, probs, bundle.labels)

    def int8_quality(self, bundle, samples, images, manifest):
        probs = probabilities(bundle, images)
        labels = np.asarray([s.label for s in samples])
        # the patch classifier of detection data has no whole-image labels to score
        score = float(np.mean(probs.argmax(1) == labels)) if manifest.task == "classification" else None
        return {"score": score, "probs": probs}

    def int8_compare(self, fp32, int8):
        agreement = float(np.mean(fp32["probs"].argmax(1) == int8["probs"].argmax(1)))
        result = {"top1_agreement": agreement, "max_abs_diff": float(np.abs(fp32["probs"] - int8["probs"]).max())}
        if fp32["score"] is None:
            return {**result, "metric": "top1_agreement", "fp32": 1.0, "int8": agreement, "drop": 1.0 - agreement}
        return {**result, "metric": "accuracy", "fp32": fp32["score"], "int8": int8["score"],
                "drop": fp32["score"] - int8["score"]}


BUNDLED = ClassifierBundle()
