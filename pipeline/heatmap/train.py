"""Train the heatmap network: patch classifier -> FCN with the same maths -> dense fine-tuning.

One MLflow run holds it all (the patch classifier's epochs, then the ``dense_*`` epochs); the
evaluate@fcn stage adds its metrics to the same run. The model folder::

    classifier/   the patch classifier as the classifier stage writes it (best.ckpt, model.json ...)
    dense/        the dense fine-tuning's checkpoints (best.ckpt, last.ckpt: what a resume continues)
    fcn.pt        the FCN's weights (state dict; after dense fine-tuning when train.fcn.dense.epochs > 0)
    fcn.json      what rebuilds it: model config, classes, window, stride, patch context
    run.json      the MLflow run
"""

from __future__ import annotations

import json
import shutil
from dataclasses import fields
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from pipeline.classify.evaluate import build_from_info, load_classifier
from pipeline.classify.settings import ClassifierTrain
from pipeline.classify.train import train_classifier
from pipeline.data.patches import BACKGROUND
from pipeline.detect.data import DetectionData
from pipeline.heatmap.dense import DenseModule
from pipeline.heatmap.fcn import FullyConvolutional
from pipeline.heatmap.settings import FcnTrain
from pipeline.io.atomic import atomic_write_json, resumable_dir
from pipeline.models.pretrained import project_checkpoint_state
from pipeline.training import BEST, RUN_FILE, FitSpec, TrackedRun, log_to_run, previous_run_id, tracked_fit

CLASSIFIER_DIR = "classifier"
DENSE_DIR = "dense"  # the dense fine-tuning's checkpoints
FCN_FILE = "fcn.json"
WEIGHTS_FILE = "fcn.pt"
STAGE = "train@fcn"


def patch_classifier_config(cfg: DictConfig) -> DictConfig:
    """The whole config with the ``fcn`` section's model and training (but its dense phase) in the
    classifier's place."""
    derived = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    derived.model.classifier = cfg.model.fcn
    derived.train.classifier = OmegaConf.masked_copy(cfg.train.fcn, [f.name for f in fields(ClassifierTrain)])
    return derived


def fine_tune(cfg: DictConfig, fcn: FullyConvolutional, classes: list[str], manifest: Path, pipelines_dir,
              out_dir: Path, run_id: str, resume: bool) -> dict:
    """Dense fine-tuning (pipeline.heatmap.dense) through the same tracked fit as every training, in
    the patch classifier's MLflow run, in ``out_dir`` (resumable); keeps the weights of the epoch
    with the lowest dense_val_loss."""
    tc, seed = FcnTrain.of(cfg.train.fcn), cfg.seed
    data = DetectionData(manifest, pipelines_dir, tc.dense.batch_size, tc.num_workers, seed, tc.image_cache_mb)
    data.require_training_splits()
    if classes[:-1] != data.classes or classes[-1] != BACKGROUND:
        raise ValueError(f"{out_dir}: the patch classifier's classes {classes} are not the manifest's "
                         f"{data.classes} + {BACKGROUND!r}; retrain it on this data")
    L.seed_everything(seed, workers=True, verbose=False)
    module = DenseModule(fcn, classes.index(BACKGROUND), tc.patch_context, tc.dense, tc.optimizer,
                         data.steps_per_epoch(), seed)
    fcn.train()  # converted from a classifier in eval mode; Lightning keeps submodules' modes
    spec = FitSpec(data, module, tc.dense.epochs, {}, {}, "", monitor="dense_val_loss")
    trainer, _ = tracked_fit(cfg, spec, TrackedRun(STAGE, out_dir, manifest, resume, run_id=run_id,
                                                  artifact_folder="dense"))
    fcn.load_state_dict(project_checkpoint_state(out_dir / BEST))
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def train_fcn(cfg: DictConfig, manifest: str | Path, pipelines_dir: str | Path, out_dir: str | Path,
              resume: bool = False, callbacks=(), preview: str | Path | None = None) -> dict:
    """Writes ``out_dir`` (classifier/, fcn.json, the FCN's weights, run.json) complete or not at all."""
    if callbacks:
        raise ValueError("the heatmap network (fcn) cannot be swept: it has no single validation objective")
    with resumable_dir(out_dir, resume, rank_zero_only.rank == 0) as work:
        return fit_fcn(cfg, Path(manifest), pipelines_dir, work, preview, resume)


def fit_fcn(cfg: DictConfig, manifest: Path, pipelines_dir: str | Path, out_dir: Path,
            preview: str | Path | None, resume: bool) -> dict:
    """The two phases in ``out_dir``; ``resume`` continues the interrupted one (a finished patch
    classifier is kept as it is)."""
    classifier_dir = out_dir / CLASSIFIER_DIR
    if resume and (classifier_dir / "best.ckpt").is_file():
        result = {"run_id": previous_run_id(classifier_dir), "metrics": {}, "epochs": None}
    else:
        result = train_classifier(patch_classifier_config(cfg), manifest, pipelines_dir, classifier_dir,
                                  resume=resume, stage=STAGE, preview=preview)
    net, info = load_classifier(classifier_dir)
    fcn = FullyConvolutional(net, info["input_size"])
    dense = {}
    if cfg.train.fcn.dense.epochs > 0:
        dense = fine_tune(cfg, fcn, info["classes"], manifest, pipelines_dir, out_dir / DENSE_DIR, result["run_id"],
                          resume)
    torch.save(fcn.state_dict(), out_dir / WEIGHTS_FILE)
    g = fcn.geometry
    atomic_write_json(out_dir / FCN_FILE, {**info, "stride": g.stride, "valid": g.valid,
                                           "patch_context": cfg.train.fcn.patch_context,
                                           "dense_epochs": cfg.train.fcn.dense.epochs})
    shutil.copyfile(out_dir / CLASSIFIER_DIR / RUN_FILE, out_dir / RUN_FILE)
    log_to_run(cfg, out_dir, {}, [out_dir / WEIGHTS_FILE, out_dir / FCN_FILE], "fcn", pending_dir=out_dir)
    return {**result, "metrics": {**result["metrics"], **dense}, "stride": g.stride, "window": list(g.window)}


def load_fcn(model_dir: str | Path) -> tuple[FullyConvolutional, dict]:
    """The trained FCN (eval mode) and its description (fcn.json)."""
    model_dir = Path(model_dir)
    path = model_dir / FCN_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: train the heatmap network first (dvc repro train@fcn)")
    info = json.loads(path.read_text())
    fcn = FullyConvolutional(build_from_info(info), info["input_size"])
    fcn.load_state_dict(torch.load(model_dir / WEIGHTS_FILE, map_location="cpu", weights_only=True))
    return fcn.eval(), info
