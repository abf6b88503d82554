"""The detector's settings (`model.detector`, `train.detector`, `evaluate.detector`, and
`augment.detector` with its tiles)."""

from dataclasses import dataclass
from typing import Any, List, Optional

from omegaconf import MISSING

from pipeline.schema import Augment, Schedule, Settings, SplitsEvaluation, TaskSettings


@dataclass
class Tiles(Settings):  # resize: tile (pipeline/augment/build.py, pipeline/predict/tiles.py)
    overlap: float = MISSING       # share of a tile its neighbour repeats in sliced inference
    object_share: float = MISSING  # training crops cut around an object (the rest anywhere)
    merge_ios: float = MISSING     # boxes of two tiles overlapping by more of the smaller one are one object


@dataclass
class DetectorAugment(Augment):
    tiles: Tiles = MISSING


@dataclass
class Anchors(Settings):
    fit: bool = MISSING        # sizes and ratios fitted to the training boxes (pipeline/detect/anchor_fit.py)
    levels: List[int] = MISSING
    sizes: Any = MISSING       # a list (one per level), "cell", or {smallest, largest[, spacing]}
    zooms: List[float] = MISSING
    ratios: List[float] = MISSING


@dataclass
class DetectorModel(Settings):
    backbone: str = MISSING
    pretrained: str = MISSING  # imagenet | none | a model folder, checkpoint or bundle of this project
    width: int = MISSING
    neck: str = MISSING
    extra_channels: int = MISSING
    head_depth: int = MISSING
    prior: float = MISSING
    coding: str = MISSING
    variances: List[float] = MISSING
    anchors: Anchors = MISSING


@dataclass
class Matching(Settings):
    assigner: str = MISSING      # iou | atss (pipeline/detect/matching.py)
    positive_iou: float = MISSING
    negative_iou: float = MISSING
    topk: int = MISSING          # atss: candidates per feature level


@dataclass
class LossSettings(Settings):
    classification: str = MISSING  # focal | quality (pipeline/detect/loss.py)
    alpha: float = MISSING
    gamma: float = MISSING
    localisation: str = MISSING
    box_weight: float = MISSING


@dataclass
class Postprocess(Settings):
    score_threshold: float = MISSING
    nms_iou: float = MISSING
    top_k: int = MISSING
    max_detections: int = MISSING
    vote_iou: Optional[float] = MISSING  # box voting (pipeline/detect/postprocess.py); null: off
    vote_power: float = MISSING
    flip: Any = MISSING  # auto | true | false: average with the mirror image's outputs (pipeline/detect/views.py)


@dataclass
class DetectorTrain(Schedule):
    epochs: Any = MISSING     # an integer, or auto (pipeline/detect/epochs.py)
    min_epochs: int = MISSING
    min_steps: int = MISSING  # with epochs: auto, more epochs than min_epochs on a small dataset
    ema_epochs: Optional[float] = MISSING  # the weights' moving average spans about this many epochs; null: none
    multi_scale: float = MISSING  # 0: off; f: each training batch resized by a factor in [1 - f, 1 + f]
    matching: Matching = MISSING
    loss: LossSettings = MISSING
    postprocess: Postprocess = MISSING


SETTINGS = TaskSettings(model=DetectorModel, train=DetectorTrain, evaluate=SplitsEvaluation, augment=DetectorAugment)
