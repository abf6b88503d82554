"""Train the multi-label classifier (`model.multilabel`, `train.multilabel`): one MLflow run,
checkpoints by validation mAP over classes."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

from pipeline.models.classifier import build_classifier
from pipeline.multilabel.data import PIPELINES, MultiLabelData
from pipeline.multilabel.module import MultiLabelModule
from pipeline.training import PREPROCESS_FILE, tracked_fit


def positive_weights(mode, positives: np.ndarray, images: int) -> torch.Tensor | None:
    """``auto``: negatives / positives per class (BCE's balance for rare classes); null: none."""
    if mode is None:
        return None
    if mode != "auto":
        raise ValueError(f"train.multilabel.pos_weight: {mode!r} is not auto or null")
    positives = np.maximum(positives, 1)
    return torch.tensor((images - positives) / positives, dtype=torch.float32).clamp(min=1.0)


def train_multilabel(cfg: DictConfig, manifest: str | Path, pipelines_dir: str | Path, out_dir: str | Path,
                     resume: bool = False, callbacks: Sequence[Callback] = (), stage: str = "train@multilabel",
                     preview: str | Path | None = None) -> dict:
    """Writes to ``out_dir``: best.ckpt (highest val_map), last.ckpt, model.json, run.json, preprocess.json."""
    manifest, out_dir = Path(manifest), Path(out_dir)
    tc, seed = cfg.train.multilabel, int(cfg.seed)
    L.seed_everything(seed, workers=True, verbose=False)
    data = MultiLabelData(manifest, pipelines_dir, int(tc.batch_size), tc.num_workers, seed,
                          tc.image_cache_mb)
    data.require_training_splits()
    input_size = data.input_size()
    net = build_classifier(cfg.model.multilabel, data.classes, input_size)
    freeze_allowed = str(cfg.model.multilabel.pretrained) != "none"  # frozen pretrained layers; none: all train
    freeze = int(tc.freeze_epochs) if freeze_allowed else 0
    data.cache_until_epoch = freeze if tc.cache_features else 0
    steps = data.steps_per_epoch()
    module = MultiLabelModule(net, data.classes, OmegaConf.to_container(tc.optimizer), float(tc.lr),
                              float(tc.weight_decay), list(tc.lr_mult), freeze, int(tc.epochs), str(tc.schedule),
                              positive_weights(tc.pos_weight, data.class_counts(), len(data.items["train"])), seed,
                              (steps, steps))
    module.keep_stem_frozen(bool(tc.frozen_stem) and freeze_allowed, "train.multilabel.frozen_stem")
    eval_pipeline = Path(pipelines_dir) / f"{PIPELINES}_eval.json"
    artifacts = [Path(pipelines_dir) / f"{PIPELINES}_train.json", eval_pipeline]
    if preview and Path(preview).is_file():
        artifacts.append(Path(preview))
    model_info = {"model": OmegaConf.to_container(cfg.model.multilabel, resolve=True), "classes": data.classes,
                  "input_size": list(input_size), "multilabel": True}
    derived = {"freeze_epochs": freeze, "input_size": list(input_size), "classes": ",".join(data.classes),
               "train_images": len(data.items["train"])}
    trainer, logger, checkpoint = tracked_fit(
        cfg, module, data, out_dir, manifest, stage, int(tc.epochs), str(tc.monitor), model_info, derived,
        artifacts, resume, callbacks, tc.early_stopping_patience, files={PREPROCESS_FILE: eval_pipeline},
        lr_find=tc.lr_find)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    return {"run_id": logger.run_id, "metrics": metrics, "classes": data.classes, "epochs": trainer.current_epoch,
            "best": str(out_dir / Path(checkpoint.best_model_path).name)}
