"""Train the SSD detector: data, network, anchors and loss from config; one MLflow run."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Sequence

import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig

from pipeline.averaging import ExponentialMovingAverage, ema_decay
from pipeline.detect.anchor_fit import fit_anchors
from pipeline.detect.anchors import AnchorSpec, make_anchors, spec_from_config
from pipeline.detect.coding import BoxCoder
from pipeline.detect.data import DetectionData
from pipeline.detect.epochs import training_epochs
from pipeline.detect.loss import DetectionLoss
from pipeline.detect.model import SSD
from pipeline.detect.module import DetectorModule
from pipeline.detect.scales import TrainingScales
from pipeline.detect.settings import DetectorModel, DetectorTrain
from pipeline.detect.views import resolved_flip
from pipeline.models.finetune import load_trained
from pipeline.models.pretrained import project_checkpoint_state
from pipeline.predict.postprocess import SETTINGS as POSTPROCESS
from pipeline.training import MODEL_FILE, FitSpec, TrackedRun, fit
from pipeline.transfer import TrainingPlan

CLASS_OUTPUTS = r"class_heads\.\d+\.out\."  # the convolutions that depend on the classes


def feature_grids(mc: DetectorModel, num_classes: int, input_size) -> list[tuple[int, int]]:
    """The rows x cols of each feature level the anchors sit on (they depend on nothing else)."""
    probe = SSD(num_classes, 1, tuple(input_size), replace(mc, pretrained="none", neck="none", head_depth=0))
    return list(probe.grids)


def fitted_config(mc: DetectorModel, data: DetectionData, input_size, positive_iou: float):
    """``mc`` with the anchors fitted to the training and validation boxes when ``anchors.fit`` (and
    the fit covers at least as many boxes as the preset), and the fit's report (None: not fitted).
    The returned settings hold the numbers used, so every later stage builds the same anchors."""
    if not mc.anchors.fit:
        return mc, None
    grids = feature_grids(mc, len(data.classes), input_size)
    boxes, labels = [], []  # the images themselves are not kept
    for split in ("train", "val"):
        for batch in data.loader(split, augment=False, shuffle=False):
            boxes += batch["boxes"]
            labels += batch["labels"]
    spec, report = fit_anchors(boxes, labels, spec_from_config(mc.anchors, len(grids)), grids, tuple(input_size),
                               positive_iou)
    chosen = {"sizes": list(spec.sizes), "ratios": list(spec.ratios)} if report["chosen"] == "fitted" else {}
    return replace(mc, anchors=replace(mc.anchors, fit=False, **chosen)), report


def build_detector(mc: DetectorModel, classes: Sequence[str], input_size) -> tuple[SSD, torch.Tensor, BoxCoder]:
    """The network of `model.detector` settings, its anchors (A x 4, input pixels) and box coder;
    ``pretrained`` a trained model of this project: its weights (pipeline.models.finetune)."""
    spec = spec_from_config(mc.anchors, len(feature_grids(mc, len(classes), input_size)))
    trained = mc.pretrained not in ("imagenet", "none")
    net = SSD(len(classes), spec.per_cell, tuple(input_size), replace(mc, pretrained="none") if trained else mc)
    if trained:
        load_trained(net, mc.pretrained, CLASS_OUTPUTS, classes)
    anchors = make_anchors(net.grids, spec, tuple(input_size))
    return net, anchors, BoxCoder(mc.coding, tuple(mc.variances))


def detector_module(cfg: DictConfig, net: SSD, anchors: torch.Tensor, coder: BoxCoder, num_classes: int,
                    input_size, steps: int, spec: AnchorSpec | None = None) -> DetectorModule:
    """``spec``: the anchors' zooms, ratios and sizes (as fitted), which multi-scale training needs."""
    tc = DetectorTrain.of(cfg.train.detector)
    scales = None
    if tc.multi_scale:
        if spec is None:
            raise ValueError("train.detector.multi_scale: the detector's module needs its anchor spec")
        scales = TrainingScales(net, spec, tuple(input_size), tc.multi_scale)
    pretrained = cfg.model.detector.pretrained != "none"
    levels = [rows * cols * net.per_cell for rows, cols in net.grids]  # the anchors' count per feature level
    loss = DetectionLoss(anchors, num_classes, coder, tc.loss, tc.matching, levels)
    plan = TrainingPlan(tc, tc.freeze_epochs if pretrained else 0, training_epochs(tc, steps), (steps, steps),
                        cfg.seed)
    module = DetectorModule(net, anchors, loss, coder, tuple(input_size), plan, scales)
    module.keep_stem_frozen(tc.frozen_stem and pretrained, "train.detector.frozen_stem")
    return module


def detector_fit(cfg: DictConfig, manifest: Path, pipelines_dir: Path) -> FitSpec:
    """Images with their boxes, the anchors fitted to them, the SSD and its module."""
    tc = DetectorTrain.of(cfg.train.detector)
    data = DetectionData(manifest, pipelines_dir, tc.batch_size, tc.num_workers, cfg.seed, tc.image_cache_mb)
    data.require_training_splits()
    input_size = data.input_size()
    mc, anchor_fit = fitted_config(DetectorModel.of(cfg.model.detector), data, input_size, tc.matching.positive_iou)
    net, anchors, coder = build_detector(mc, data.classes, input_size)
    module = detector_module(cfg, net, anchors, coder, len(data.classes), input_size, data.steps_per_epoch(),
                             spec_from_config(mc.anchors, len(net.grids)))
    flip = resolved_flip(tc.postprocess.flip, data.pipelines[True])  # evaluation's and the bundle's
    model_info = {"model": asdict(mc), "classes": data.classes,
                  "input_size": list(input_size), "anchor_fit": anchor_fit,
                  "postprocess": {**asdict(tc.postprocess), "flip": flip},
                  "tiles": data.tiles}  # None: whole images; else sliced inference (pipeline/predict/tiles.py)
    derived = {"anchors": len(anchors), "grids": str(net.grids), "input_size": list(input_size), "flip": flip,
               "classes": ",".join(data.classes), "train_images": len(data.samples["train"]), "epochs": module.epochs}
    if module.scales is not None:
        derived["multi_scale_sizes"] = " ".join(f"{w}x{h}" for w, h in module.scales.sizes)
    if anchor_fit:
        derived.update({f"anchors_{k}": v for k, v in anchor_fit.items() if k == "chosen"})
        derived.update({f"anchor_{k}_{which}": anchor_fit[which][k] for which in ("fitted", "preset")
                        for k in ("recall", "worst_class_recall", "mean_iou", "sizes", "ratios")})
    averaging = []
    if tc.ema_epochs is not None:  # pipeline/averaging.py
        decay = ema_decay(tc.ema_epochs, data.steps_per_epoch())
        averaging.append(ExponentialMovingAverage(decay, warmup_steps=1 / (1 - decay)))
        derived["ema_decay"] = round(decay, 6)
    return FitSpec(data, module, module.epochs, model_info, derived, "detector", lambda: {"anchors": len(anchors)},
                   callbacks=averaging)


def train_detector(cfg: DictConfig, manifest: str | Path, pipelines_dir: str | Path, out_dir: str | Path,
                   resume: bool = False, callbacks: Sequence[Callback] = (), stage: str = "train@detector",
                   preview: str | Path | None = None) -> dict:
    """Writes to ``out_dir``: best.ckpt (by train.detector.monitor), last.ckpt, model.json, run.json,
    preprocess.json."""
    run = TrackedRun(stage, out_dir, manifest, resume, callbacks)
    return fit(cfg, "detector", detector_fit, pipelines_dir, run, preview)


def load_detector(model_dir: str | Path, checkpoint: str = "best.ckpt"):
    """(network in eval mode, anchors, coder, model.json) of a trained detector folder."""
    model_dir = Path(model_dir)
    info = json.loads((model_dir / MODEL_FILE).read_text())
    missing = [key for key in (*POSTPROCESS, "flip") if key not in info["postprocess"]]
    if missing:  # a model trained by an earlier version of the pipeline
        raise ValueError(f"{model_dir / MODEL_FILE}: no postprocess {', '.join(missing)}; train it again "
                         f"(dvc repro train@detector)")
    mc = DetectorModel.of({**info["model"], "pretrained": "none"})
    net, anchors, coder = build_detector(mc, info["classes"], info["input_size"])
    net.load_state_dict(project_checkpoint_state(model_dir / checkpoint))
    return net.eval(), anchors, coder, info
