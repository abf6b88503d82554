"""Train the multi-label classifier (`model.multilabel`, `train.multilabel`): one MLflow run,
checkpoints by validation mAP over classes."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig

from pipeline.models.classifier import build_classifier
from pipeline.multilabel.data import PIPELINES, MultiLabelData
from pipeline.multilabel.module import MultiLabelModule
from pipeline.multilabel.settings import MultiLabelTrain
from pipeline.schema import ClassifierModel
from pipeline.training import FitSpec, TrackedRun, fit
from pipeline.transfer import TrainingPlan


def positive_weights(mode, positives: np.ndarray, images: int) -> torch.Tensor | None:
    """``auto``: negatives / positives per class (BCE's balance for rare classes); null: none."""
    if mode is None:
        return None
    if mode != "auto":
        raise ValueError(f"train.multilabel.pos_weight: {mode!r} is not auto or null")
    positives = np.maximum(positives, 1)
    return torch.tensor((images - positives) / positives, dtype=torch.float32).clamp(min=1.0)


def multilabel_fit(cfg: DictConfig, manifest: Path, pipelines_dir: Path) -> FitSpec:
    """Whole images with their class sets, the network and the module (BCE with per-class weights)."""
    tc, mc = MultiLabelTrain.of(cfg.train.multilabel), ClassifierModel.of(cfg.model.multilabel)
    data = MultiLabelData(manifest, pipelines_dir, tc.batch_size, tc.num_workers, cfg.seed, tc.image_cache_mb)
    data.require_training_splits()
    input_size = data.input_size()
    net = build_classifier(mc, data.classes, input_size)
    freeze_allowed = mc.pretrained != "none"  # frozen pretrained layers; none: all train
    freeze = tc.freeze_epochs if freeze_allowed else 0
    data.cache_until_epoch = freeze if tc.cache_features else 0
    steps = data.steps_per_epoch()
    plan = TrainingPlan(tc, freeze, tc.epochs, (steps, steps), cfg.seed)
    module = MultiLabelModule(net, data.classes, plan,
                              positive_weights(tc.pos_weight, data.class_counts(), len(data.items["train"])))
    module.keep_stem_frozen(tc.frozen_stem and freeze_allowed, "train.multilabel.frozen_stem")
    model_info = {"model": asdict(mc), "classes": data.classes, "input_size": list(input_size), "multilabel": True}
    derived = {"freeze_epochs": freeze, "input_size": list(input_size), "classes": ",".join(data.classes),
               "train_images": len(data.items["train"])}
    return FitSpec(data, module, tc.epochs, model_info, derived, PIPELINES)


def train_multilabel(cfg: DictConfig, manifest: str | Path, pipelines_dir: str | Path, out_dir: str | Path,
                     resume: bool = False, callbacks: Sequence[Callback] = (), stage: str = "train@multilabel",
                     preview: str | Path | None = None) -> dict:
    """Writes to ``out_dir``: best.ckpt (by train.multilabel.monitor), last.ckpt, model.json, run.json,
    preprocess.json."""
    run = TrackedRun(stage, out_dir, manifest, resume, callbacks)
    return fit(cfg, "multilabel", multilabel_fit, pipelines_dir, run, preview)
