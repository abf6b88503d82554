"""The classifier's settings (`model.classifier`, `train.classifier`, `evaluate.classifier`); their
values live in conf/ (pipeline.schema validates them)."""

from dataclasses import dataclass
from typing import Any

from omegaconf import MISSING

from pipeline.schema import ClassifierModel, Schedule, SplitsEvaluation, TaskSettings


@dataclass
class ClassifierTrain(Schedule):
    cache_features: bool = MISSING
    class_weights: Any = MISSING  # auto | null | [w0, w1, ...]
    label_smoothing: float = MISSING
    background_per_image: int = MISSING
    patch_context: float = MISSING
    fragments_per_object: int = MISSING


SETTINGS = TaskSettings(model=ClassifierModel, train=ClassifierTrain, evaluate=SplitsEvaluation)
