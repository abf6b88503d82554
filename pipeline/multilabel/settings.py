"""The multi-label classifier's settings (`model.multilabel`, `train.multilabel`, `evaluate.multilabel`)."""

from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING

from pipeline.schema import ClassifierModel, Schedule, SplitsEvaluation, TaskSettings


@dataclass
class MultiLabelTrain(Schedule):
    cache_features: bool = MISSING
    pos_weight: Optional[str] = MISSING  # auto (negatives / positives per class) | null


SETTINGS = TaskSettings(model=ClassifierModel, train=MultiLabelTrain, evaluate=SplitsEvaluation)
