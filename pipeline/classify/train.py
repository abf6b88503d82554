"""Train a classifier: data, network and schedule from config; one MLflow run; checkpoints."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

from pipeline.classify.data import data_from_config
from pipeline.classify.module import ClassifierModule, class_weights
from pipeline.models.classifier import build_classifier
from pipeline.training import FitSpec, fit

# Lightning 2.6 noise: a torch deprecation inside its own code, and the frozen backbone kept in eval mode
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")


def classifier_fit(cfg: DictConfig, manifest: Path, pipelines_dir: Path) -> FitSpec:
    """The classifier's data (whole images, or the patch view of detection data), network and module."""
    tc, seed = cfg.train.classifier, int(cfg.seed)
    data = data_from_config(manifest, pipelines_dir, tc, seed)
    data.require_training_splits()
    input_size = data.input_size()
    net = build_classifier(cfg.model.classifier, data.classes, input_size)
    pretrained = str(cfg.model.classifier.pretrained) != "none"
    freeze = int(tc.freeze_epochs) if pretrained else 0
    data.cache_until_epoch = freeze if tc.cache_features else 0
    steps = data.steps_per_epoch()
    module = ClassifierModule(
        net, data.classes, OmegaConf.to_container(tc.optimizer), float(tc.lr), float(tc.weight_decay),
        list(tc.lr_mult), freeze, int(tc.epochs), str(tc.schedule),
        class_weights(tc.class_weights, data.class_counts()), float(tc.label_smoothing), seed, (steps, steps))
    module.keep_stem_frozen(bool(tc.frozen_stem) and pretrained, "train.classifier.frozen_stem")
    model_info = {"model": OmegaConf.to_container(cfg.model.classifier, resolve=True), "classes": data.classes,
                  "input_size": list(input_size)}
    derived = {"freeze_epochs": freeze, "input_size": list(input_size), "classes": ",".join(data.classes),
               "train_items": len(data.items["train"])}
    return FitSpec(data, module, int(tc.epochs), model_info, derived, "classifier",
                   lambda: {"feature_cache_seconds": data.cache_seconds})


def train_classifier(cfg: DictConfig, manifest: str | Path, pipelines_dir: str | Path, out_dir: str | Path,
                     resume: bool = False, callbacks: Sequence[Callback] = (), stage: str = "train@classifier",
                     preview: str | Path | None = None) -> dict:
    """Fit the classifier of ``cfg`` (model.classifier, train.classifier, trainer, logger, seed) in one
    MLflow run. Writes to ``out_dir``: best.ckpt (by train.classifier.monitor), last.ckpt, model.json,
    preprocess.json, run.json. ``resume``: continue from out_dir/last.ckpt in the same MLflow run."""
    return fit(cfg, "classifier", classifier_fit, manifest, pipelines_dir, out_dir, resume, callbacks, stage, preview)
