"""Train a classifier: data, network and schedule from config; one MLflow run; checkpoints."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import lightning as L
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

from pipeline.classify.data import data_from_config
from pipeline.classify.module import ClassifierModule, class_weights
from pipeline.models.classifier import build_classifier
from pipeline.training import PREPROCESS_FILE, tracked_fit

# Lightning 2.6 noise: a torch deprecation inside its own code, and the frozen backbone kept in eval mode
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")



def train_classifier(cfg: DictConfig, manifest: str | Path, pipelines_dir: str | Path, out_dir: str | Path,
                     resume: bool = False, callbacks: Sequence[Callback] = (), stage: str = "train@classifier",
                     preview: str | Path | None = None) -> dict:
    """Fit the classifier of ``cfg`` (model.classifier, train.classifier, trainer, logger, seed).

    Writes to ``out_dir``: best.ckpt (lowest val_loss), last.ckpt, model.json, run.json.
    ``resume``: continue from out_dir/last.ckpt in the same MLflow run.
    """
    manifest, out_dir = Path(manifest), Path(out_dir)
    tc, seed = cfg.train.classifier, int(cfg.seed)
    L.seed_everything(seed, workers=True, verbose=False)
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

    artifacts = [Path(pipelines_dir) / "classifier_train.json", Path(pipelines_dir) / "classifier_eval.json"]
    if preview and Path(preview).is_file():
        artifacts.append(Path(preview))
    model_info = {"model": OmegaConf.to_container(cfg.model.classifier, resolve=True), "classes": data.classes,
                  "input_size": list(input_size)}
    derived = {"freeze_epochs": freeze, "input_size": list(input_size), "classes": ",".join(data.classes),
               "train_items": len(data.items["train"])}
    trainer, logger, checkpoint = tracked_fit(
        cfg, module, data, out_dir, manifest, stage, int(tc.epochs), str(tc.monitor), model_info, derived,
        artifacts, resume, callbacks, tc.early_stopping_patience,
        files={PREPROCESS_FILE: Path(pipelines_dir) / "classifier_eval.json"}, lr_find=tc.lr_find)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return {"run_id": logger.run_id, "metrics": metrics, "classes": data.classes, "epochs": trainer.current_epoch,
            "best": str(out_dir / Path(checkpoint.best_model_path).name), "feature_cache_seconds": data.cache_seconds}
