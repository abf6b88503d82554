"""Train a classifier: data, network and schedule from config; one MLflow run; checkpoints."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Sequence

import lightning as L
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import DictConfig, OmegaConf

from pipeline.classify.data import data_from_config
from pipeline.classify.module import ClassifierModule, class_weights
from pipeline.io.atomic import atomic_write_json
from pipeline.models.classifier import build_classifier
from pipeline.tracking import ensure_experiment, flat_params, run_tags

# Lightning 2.6 noise: a torch deprecation inside its own code, and the frozen backbone kept in eval mode
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")

MODEL_FILE = "model.json"  # what rebuilds the network: model config, classes, input size
RUN_FILE = "run.json"  # the MLflow run of this training (evaluation logs to it too)
PREPROCESS_FILE = "preprocess.json"  # the eval pipeline, so the folder alone classifies images


def open_logger(cfg: DictConfig, stage: str, manifest: Path, run_id: str | None) -> MLFlowLogger:
    uri, _ = ensure_experiment(cfg.logger)
    return MLFlowLogger(experiment_name=cfg.logger.experiment, tracking_uri=uri, run_name=stage,
                        tags=run_tags(stage, manifest) if run_id is None else None, run_id=run_id)


def previous_run_id(out_dir: Path) -> str | None:
    path = out_dir / RUN_FILE
    return json.loads(path.read_text())["run_id"] if path.is_file() else None


def train_classifier(cfg: DictConfig, manifest: str | Path, pipelines_dir: str | Path, out_dir: str | Path,
                     resume: bool = False, callbacks: Sequence[Callback] = (), stage: str = "train_classifier",
                     preview: str | Path | None = None) -> dict:
    """Fit the classifier of ``cfg`` (model.classifier, train.classifier, trainer, logger, seed).

    Writes to ``out_dir``: best.ckpt (lowest val_loss), last.ckpt, model.json, run.json.
    ``resume``: continue from out_dir/last.ckpt in the same MLflow run.
    """
    manifest, out_dir = Path(manifest), Path(out_dir)
    tc, seed = cfg.train.classifier, int(cfg.seed)
    L.seed_everything(seed, workers=True, verbose=False)
    data = data_from_config(manifest, pipelines_dir, tc, seed)
    input_size = data.input_size()
    net = build_classifier(cfg.model.classifier, len(data.classes), input_size)
    pretrained = str(cfg.model.classifier.get("pretrained", "none")) != "none"
    freeze = int(tc.freeze_epochs) if pretrained else 0
    data.cache_until_epoch = freeze if tc.cache_features else 0
    steps = data.steps_per_epoch()
    module = ClassifierModule(
        net, data.classes, float(tc.lr), float(tc.weight_decay), list(tc.lr_mult), freeze, int(tc.epochs),
        str(tc.schedule), class_weights(tc.class_weights, data.class_counts()), float(tc.label_smoothing), seed,
        (steps, steps))

    ckpt = out_dir / "last.ckpt"
    resuming = resume and ckpt.is_file()
    logger = open_logger(cfg, stage, manifest, previous_run_id(out_dir) if resuming else None)
    if not resuming:
        logger.log_hyperparams(flat_params(cfg))
        logger.log_hyperparams({"derived.freeze_epochs": freeze, "derived.input_size": list(input_size),
                                "derived.classes": ",".join(data.classes), "derived.train_items": len(data.items["train"])})
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / RUN_FILE, {"run_id": logger.run_id, "experiment": cfg.logger.experiment})
    atomic_write_json(out_dir / MODEL_FILE, {"model": OmegaConf.to_container(cfg.model.classifier, resolve=True),
                                             "classes": data.classes, "input_size": list(input_size)})
    shutil.copyfile(Path(pipelines_dir) / "classifier_eval.json", out_dir / PREPROCESS_FILE)
    checkpoint = ModelCheckpoint(dirpath=out_dir, filename="best", monitor="val_loss", mode="min", save_last=True,
                                 auto_insert_metric_name=False, enable_version_counter=False)
    all_callbacks = [checkpoint, *callbacks]
    if tc.get("early_stopping_patience"):
        all_callbacks.append(EarlyStopping(monitor="val_loss", patience=int(tc.early_stopping_patience)))
    trainer = L.Trainer(max_epochs=int(tc.epochs), logger=logger, callbacks=all_callbacks,
                        reload_dataloaders_every_n_epochs=1, default_root_dir=str(out_dir),
                        num_sanity_val_steps=0, **OmegaConf.to_container(cfg.trainer, resolve=True))
    trainer.fit(module, datamodule=data, ckpt_path=str(ckpt) if resuming else None, weights_only=True)

    artifacts = [out_dir / "best.ckpt", out_dir / MODEL_FILE,
                 Path(pipelines_dir) / "classifier_train.json", Path(pipelines_dir) / "classifier_eval.json"]
    if preview and Path(preview).is_file():
        artifacts.append(Path(preview))
    if trainer.is_global_zero:
        for path in artifacts:
            logger.experiment.log_artifact(logger.run_id, str(path))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return {"run_id": logger.run_id, "metrics": metrics, "classes": data.classes, "epochs": trainer.current_epoch,
            "best": str(checkpoint.best_model_path), "feature_cache_seconds": data.cache_seconds}
