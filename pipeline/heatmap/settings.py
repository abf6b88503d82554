"""The heatmap network's settings (`model.fcn`, `train.fcn` with its dense phase, `evaluate.fcn`)."""

from dataclasses import dataclass
from typing import List

from omegaconf import MISSING

from pipeline.classify.settings import ClassifierTrain
from pipeline.schema import ClassifierModel, Settings, TaskSettings


@dataclass
class DenseTrain(Settings):
    epochs: int = MISSING
    lr: float = MISSING
    weight_decay: float = MISSING
    batch_size: int = MISSING
    crop: int = MISSING
    object_fraction: float = MISSING
    scale_jitter: float = MISSING
    scales: List[float] = MISSING
    positive_iou: float = MISSING
    negative_iou: float = MISSING


@dataclass
class FcnTrain(ClassifierTrain):
    dense: DenseTrain = MISSING


@dataclass
class HeatmapEvaluation(Settings):
    split: str = MISSING       # a manifest split, or auto: scene, else test, else val
    scales: List[float] = MISSING
    compare_scenes: int = MISSING
    compare_scales: List[float] = MISSING
    sliding_overlaps: List[float] = MISSING
    threshold: float = MISSING
    nms_iou: float = MISSING
    peak_smoothing: int = MISSING
    overlays: int = MISSING
    draw_score: float = MISSING


SETTINGS = TaskSettings(model=ClassifierModel, train=FcnTrain, evaluate=HeatmapEvaluation)
