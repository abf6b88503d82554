"""One tracked Lightning fit, shared by the classifier and the detector: an MLflow run (resumed
from run.json when asked), model.json, best/last checkpoints, and the artifacts logged after."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import lightning as L
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from pipeline.io.atomic import atomic_write_json
from pipeline.tracking import ensure_experiment, flat_params, run_tags, tracking_uri

MODEL_FILE = "model.json"  # what rebuilds the network: model config, classes, input size
RUN_FILE = "run.json"  # the MLflow run of this training (evaluation logs to it too)
RUNTIME_KEYS = ("logger.tags.", "logger.run_name", "logger.parent_run_id")  # set by a sweep: tags, not params


def open_logger(cfg: DictConfig, stage: str, manifest: Path, run_id: str | None) -> MLFlowLogger:
    """The stage's MLflow run: ``run_id`` resumed, else a new one. A sweep sets (at run time, not
    in conf/) ``logger.parent_run_id`` to nest it, ``logger.run_name`` and ``logger.tags``."""
    uri, _ = ensure_experiment(cfg.logger)
    tags = None if run_id else {**run_tags(stage, manifest, cfg.logger.get("parent_run_id")),
                                **(cfg.logger.get("tags") or {})}
    return MLFlowLogger(experiment_name=cfg.logger.experiment, tracking_uri=uri,
                        run_name=cfg.logger.get("run_name") or stage, tags=tags, run_id=run_id)


def previous_run_id(out_dir: Path) -> str | None:
    path = out_dir / RUN_FILE
    return json.loads(path.read_text())["run_id"] if path.is_file() else None


def tracked_fit(cfg: DictConfig, module: L.LightningModule, data: L.LightningDataModule, out_dir: Path,
                manifest: Path, stage: str, epochs: int, monitor: str, mode: str, model_info: dict,
                derived: dict, artifacts: Sequence[Path] = (), resume: bool = False,
                callbacks: Sequence[Callback] = (), patience: int | None = None):
    """Fit ``module`` on ``data`` for ``epochs`` in the MLflow run of ``stage``; writes
    ``out_dir``/{best,last}.ckpt (best by ``monitor``), model.json and run.json. Returns
    (trainer, logger, checkpoint callback)."""
    ckpt = out_dir / "last.ckpt"
    resuming = resume and ckpt.is_file()
    logger = open_logger(cfg, stage, manifest, previous_run_id(out_dir) if resuming else None)
    if not resuming:
        logger.log_hyperparams({k: v for k, v in flat_params(cfg).items() if not k.startswith(RUNTIME_KEYS)})
        logger.log_hyperparams({f"derived.{k}": v for k, v in derived.items()})
    out_dir.mkdir(parents=True, exist_ok=True)
    if rank_zero_only.rank == 0:  # under DDP every rank runs this; the run and its files are rank zero's
        atomic_write_json(out_dir / RUN_FILE, {"run_id": logger.run_id, "experiment": cfg.logger.experiment})
        atomic_write_json(out_dir / MODEL_FILE, model_info)
    checkpoint = ModelCheckpoint(dirpath=out_dir, filename="best", monitor=monitor, mode=mode, save_last=True,
                                 auto_insert_metric_name=False, enable_version_counter=False)
    all_callbacks = [checkpoint, *callbacks]
    if patience:
        all_callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=int(patience)))
    trainer = L.Trainer(max_epochs=epochs, logger=logger, callbacks=all_callbacks,
                        reload_dataloaders_every_n_epochs=1, default_root_dir=str(out_dir),
                        num_sanity_val_steps=0, **OmegaConf.to_container(cfg.trainer, resolve=True))
    trainer.fit(module, datamodule=data, ckpt_path=str(ckpt) if resuming else None, weights_only=True)
    if trainer.is_global_zero:
        for path in [out_dir / "best.ckpt", out_dir / MODEL_FILE, *artifacts]:
            if Path(path).is_file():
                logger.experiment.log_artifact(logger.run_id, str(path))
    return trainer, logger, checkpoint


def log_to_run(cfg: DictConfig, model_dir: str | Path, metrics: dict[str, float], artifacts: list[Path],
               folder: str) -> None:
    """Add metrics and artifacts (under ``folder``) to the MLflow run of the training in ``model_dir``."""
    run_id = json.loads((Path(model_dir) / RUN_FILE).read_text())["run_id"]
    client = MlflowClient(tracking_uri=tracking_uri(cfg.logger))
    for name, value in metrics.items():
        client.log_metric(run_id, name, float(value))
    for path in artifacts:
        client.log_artifact(run_id, str(path), artifact_path=folder)
