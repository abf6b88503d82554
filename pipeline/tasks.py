"""The registry of tasks: each kind of model is declared here once.

A task says which data it learns from, where its training, evaluation and export live, which
metrics it reports, which one ranks its versions in the model registry and which ones a sweep may
maximise. Stages, export, `predict`, sweeps and the model registry look tasks up here; adding a
task means one entry (and its own modules). Functions are named as ``module:function`` and
imported on use, so this module (and `predict`, which reads it) imports no torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    name: str
    data: tuple[str, ...]      # kinds of prepared data it trains on: classification, detection, multilabel
    augment: str               # the `augment` section whose pipelines it trains on (its preview is logged)
    preview: str               # (manifest, samples, seed) -> (examples, classes) the augment stage previews
    train: str                 # (cfg, manifest, pipelines, out, resume, callbacks, preview) -> result dict
    evaluate: str              # (cfg, manifest, pipelines, model, metrics, reports, tables, run_id=None) -> results
    export: str                # (cfg, model_dir, manifest, metrics) -> pipeline.models.exportable.Exportable
    bundled: str               # its bundles in `predict` (torch-free): a pipeline.predict.bundled.Bundled
    settings: str              # the classes of its config sections: a pipeline.schema.TaskSettings
    trained: tuple[str, ...]   # per-epoch metrics a training prints
    # the few numbers a user compares (metrics/<task>.json, `dvc exp show`, the MLflow runs table):
    # (key, path in the evaluation's results); keys are short and unique across tasks, so that
    # `dvc exp show` heads each column with the key alone
    headline: tuple[tuple[str, str], ...]
    seconds_key: str           # the headline key of the training's seconds
    key_metric: tuple[str, ...]  # path in the evaluation metrics; higher is better (registry champion)
    monitors: tuple[str, ...]  # per-epoch metrics `train.<task>.monitor` may choose (best checkpoint, early stop)
    objectives: tuple[str, ...] = ()  # validation metrics a sweep may maximise (none: not sweepable)
    monitor: str = ""          # per-epoch metric a sweep's pruner watches
    outputs: tuple[str, ...] = ("probabilities",)  # the exported graph's outputs, in order
    class_axis: int = -1       # the axis of the first output that holds one value per label
    # (key, "module:function(cfg)"): checks of the task's `auto`-or-value settings that
    # pipeline.config runs before any work (a ValueError names the key and the fix)
    checks: tuple[tuple[str, str], ...] = ()
    # "module:function(manifest) -> bool": the data reaches its model as patches (crops), so that
    # `input_size: auto` keeps their small size; empty: whole images
    sees_patches: str = ""

    def step(self, name: str):
        """The function of step ``name`` (train, evaluate, export), or its `bundled` or `settings` object."""
        return resolve(getattr(self, name))


def resolve(reference: str):
    """The function a ``module:function`` reference names, imported on use."""
    module, _, function = reference.partition(":")
    return getattr(importlib.import_module(module), function)


TASKS = {
    task.name: task for task in (
        Task("classifier", ("classification", "detection"), "classifier", "pipeline.classify.preview:preview_examples",
             train="pipeline.classify.train:train_classifier",
             evaluate="pipeline.classify.evaluate:evaluate_classifier",
             export="pipeline.classify.export:load_classifier_export",
             bundled="pipeline.classify.bundled:BUNDLED", settings="pipeline.classify.settings:SETTINGS",
             trained=("val_acc", "val_f1"),
             headline=(("acc", "val.accuracy"), ("f1", "val.macro_f1"), ("test_acc", "test.accuracy"),
                       ("test_f1", "test.macro_f1")), seconds_key="cls_s",
             monitors=("val_loss", "val_acc", "val_f1"),
             key_metric=("val", "accuracy"), objectives=("accuracy", "macro_f1"), monitor="val_acc",
             sees_patches="pipeline.classify.preview:sees_patches"),
        Task("fcn", ("detection",), "classifier", "pipeline.classify.preview:preview_examples",
             train="pipeline.heatmap.train:train_fcn",
             evaluate="pipeline.heatmap.stage:evaluate_fcn",
             export="pipeline.heatmap.export:load_fcn_export",
             bundled="pipeline.heatmap.bundled:BUNDLED", settings="pipeline.heatmap.settings:SETTINGS",
             trained=("val_acc", "dense_val_loss", "dense_val_object_recall"),
             headline=(("speedup", "speed_ratio"), ("pointing", "pointing_game.fcn"), ("ap50", "ap50.fcn")),
             seconds_key="fcn_s",
             monitors=("val_loss", "val_acc", "val_f1"),  # its patch classifier's; the dense phase: its loss
             key_metric=("pointing_game", "fcn"), class_axis=1, sees_patches="pipeline.classify.preview:sees_patches"),
        Task("detector", ("detection",), "detector", "pipeline.detect.preview:preview_examples",
             train="pipeline.detect.train:train_detector",
             evaluate="pipeline.detect.evaluate:evaluate_detector",
             export="pipeline.detect.export:load_detector_export",
             bundled="pipeline.detect.bundled:BUNDLED", settings="pipeline.detect.settings:SETTINGS",
             trained=("val_map_50", "val_map"),
             headline=(("map50", "val.map_50"), ("map", "val.map"), ("test_map50", "test.map_50"),
                       ("test_map", "test.map"), ("best_f1", "val.best_f1"), ("f1_conf", "val.best_f1_confidence")),
             seconds_key="det_s",
             monitors=("val_loss", "val_map_50", "val_map"),
             key_metric=("val", "map_50"), objectives=("map_50", "map", "map_75"), monitor="val_map_50",
             outputs=("scores", "boxes"),
             checks=(("train.detector.epochs", "pipeline.detect.epochs:check_epochs"),
                     ("train.detector.postprocess", "pipeline.predict.postprocess:check_postprocess"))),
        Task("multilabel", ("detection", "multilabel"), "multilabel", "pipeline.multilabel.preview:preview_examples",
             train="pipeline.multilabel.train:train_multilabel",
             evaluate="pipeline.multilabel.evaluate:evaluate_multilabel",
             export="pipeline.multilabel.export:load_multilabel_export",
             bundled="pipeline.multilabel.bundled:BUNDLED", settings="pipeline.multilabel.settings:SETTINGS",
             trained=("val_map", "val_f1"),
             headline=(("ml_map", "val.map"), ("ml_f1", "val.macro_f1"), ("ml_test_map", "test.map"),
                       ("ml_test_f1", "test.macro_f1")), seconds_key="ml_s",
             monitors=("val_loss", "val_map", "val_f1"),
             key_metric=("val", "map"), objectives=("map", "macro_f1", "micro_f1"), monitor="val_map"),
    )
}


# What each per-model stage of dvc.yaml reads from params.yaml ("{task}": the model's name), and so
# lists under `params`: changing anything else (tracking, the progress bar) re-runs none of them.
STEP_PARAMS = {
    "train": ("seed", "model.{task}", "train.{task}", "trainer"),
    "evaluate": ("seed", "train.{task}", "evaluate.{task}", "trainer.accelerator"),  # the device it runs on
    "export": ("augment", "evaluate.{task}", "export"),
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"{name!r} is not a task; choose one of {', '.join(TASKS)}") from None


# `train.<task>.monitor: last`, for every task: best.ckpt is the last epoch's weights (with the detector's
# `ema_epochs`, their moving average over about the last epochs), as torchvision's and Detectron2's detection
# references ship theirs; no metric on a small validation split picks an epoch, and nothing stops early
LAST = "last"


def monitor_mode(name: str) -> str:
    """Lightning's mode for a monitored metric: losses fall, the others rise."""
    return "min" if name.endswith("loss") else "max"


def lookup(results: dict, path: str):
    value = results
    for part in path.split("."):
        value = value[part]
    return value


HEADLINE_DIGITS = 4  # decimals kept in metrics/<task>.json (the evaluation's own file keeps all)


def headline_metrics(task: Task, results: dict, train_seconds: float | None) -> dict:
    """The headline of ``task``'s evaluation ``results``: {key: value} in the task's order. A split
    the data does not have (no test images) leaves its keys out; a path that is not in the results
    of a split that is there is an error (the registry and the evaluation disagree)."""
    headline = {}
    for key, path in task.headline:
        split = path.split(".")[0]
        if split in ("val", "test") and split not in results:
            continue
        value = lookup(results, path)
        headline[key] = round(float(value), HEADLINE_DIGITS) if value is not None else None
    if train_seconds is not None:
        headline[task.seconds_key] = round(float(train_seconds), 1)
    return headline


def shown(headline: dict) -> str:
    """A headline as 'key value, ...'."""
    return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in headline.items())
