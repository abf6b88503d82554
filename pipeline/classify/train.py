"""Train a classifier: data, network and schedule from config; one MLflow run; checkpoints."""

from __future__ import annotations

import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig

from pipeline.classify.data import data_from_config
from pipeline.classify.module import ClassifierModule, class_weights
from pipeline.classify.settings import ClassifierTrain
from pipeline.models.classifier import build_classifier
from pipeline.schema import ClassifierModel
from pipeline.training import FitSpec, TrackedRun, fit
from pipeline.transfer import TrainingPlan

# Lightning 2.6 noise: a torch deprecation inside its own code, and the frozen backbone kept in eval mode
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")


def classifier_fit(cfg: DictConfig, manifest: Path, pipelines_dir: Path) -> FitSpec:
    """The classifier's data (whole images, or the patch view of detection data), network and module."""
    tc, mc = ClassifierTrain.of(cfg.train.classifier), ClassifierModel.of(cfg.model.classifier)
    data = data_from_config(manifest, pipelines_dir, tc, cfg.seed)
    data.require_training_splits()
    input_size = data.input_size()
    net = build_classifier(mc, data.classes, input_size)
    pretrained = mc.pretrained != "none"
    freeze = tc.freeze_epochs if pretrained else 0
    data.cache_until_epoch = freeze if tc.cache_features else 0
    steps = data.steps_per_epoch()
    plan = TrainingPlan(tc, freeze, tc.epochs, (steps, steps), cfg.seed)
    module = ClassifierModule(net, data.classes, plan, class_weights(tc.class_weights, data.class_counts()))
    module.keep_stem_frozen(tc.frozen_stem and pretrained, "train.classifier.frozen_stem")
    model_info = {"model": asdict(mc), "classes": data.classes, "input_size": list(input_size)}
    derived = {"freeze_epochs": freeze, "input_size": list(input_size), "classes": ",".join(data.classes),
               "train_items": len(data.items["train"])}
    return FitSpec(data, module, tc.epochs, model_info, derived, "classifier",
                   lambda: {"feature_cache_seconds": data.cache_seconds})


def train_classifier(cfg: DictConfig, manifest: str | Path, pipelines_dir: str | Path, out_dir: str | Path,
                     resume: bool = False, callbacks: Sequence[Callback] = (), stage: str = "train@classifier",
                     preview: str | Path | None = None) -> dict:
    """Fit the classifier of ``cfg`` (model.classifier, train.classifier, trainer, logger, seed) in one
    MLflow run. Writes to ``out_dir``: best.ckpt (by train.classifier.monitor), last.ckpt, model.json,
    preprocess.json, run.json. ``resume``: continue from out_dir/last.ckpt in the same MLflow run."""
    run = TrackedRun(stage, out_dir, manifest, resume, callbacks)
    return fit(cfg, "classifier", classifier_fit, pipelines_dir, run, preview)
