import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import pipeline  # noqa: F401  (sets offline/telemetry environment defaults)
from pipeline.augment.stage import run_augment
from pipeline.classify.train import train_classifier
from pipeline.config import compose
from pipeline.data.prepare import prepare
from pipeline.detect.train import train_detector
from pipeline.export.build import export_bundle
from pipeline.heatmap.train import train_fcn
from pipeline.multilabel.evaluate import evaluate_multilabel
from pipeline.multilabel.train import train_multilabel

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("CVPIPE_SHARED_DATASETS", PROJECT_ROOT.parent / "shared" / "datasets"))


@pytest.fixture
def shared_datasets() -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATASETS}")
    return SHARED_DATASETS


def prepare_and_augment(cfg, root: Path, seed: int = 42) -> Path:
    """The `prepare` and `augment` stages of ``cfg`` into ``root`` (prepared/, augment/); the manifest."""
    prepare(cfg.data, seed, root / "prepared", root / "rp", root / "m.json")
    run_augment(cfg.augment, root / "prepared/manifest.json", root / "augment", root / "ra", seed)
    return root / "prepared/manifest.json"


# A tiny prepared synthetic dataset with its saved pipelines, for training tests.
@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    prepare_and_augment(compose(["data=synthetic_tiny"]), root)
    return root


def tiny_config(tmp_path: Path, *overrides: str):
    """The project config for the tiny data, with an MLflow store of the test's own."""
    cfg = compose(["data=synthetic_tiny", "logger.progress_bar=false", *overrides])
    cfg.logger = OmegaConf.merge(cfg.logger, {"local_store": str(tmp_path / "mlruns/mlflow.db"),
                                              "artifact_root": str(tmp_path / "mlruns/artifacts"),
                                              "tracking_uri": None})
    return cfg


TRAIN = {"classifier": (train_classifier, ["train.classifier.epochs=1", "train.classifier.freeze_epochs=0",
                                           "model/classifier=small_alexnet"]),
         "detector": (train_detector, ["train.detector.epochs=1", "train.detector.freeze_epochs=0",
                                       "train.detector.batch_size=8"]),
         "fcn": (train_fcn, ["train.fcn.epochs=1", "train.fcn.dense.epochs=1"]),
         "multilabel": (train_multilabel, ["train.multilabel.epochs=2", "train.multilabel.freeze_epochs=0",
                                           "model/classifier@model.multilabel=small_alexnet"])}


# One tiny trained and exported model per task (export, predict, bad-input and load tests).
@pytest.fixture(scope="session")
def bundles(tiny_data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bundles")
    manifest, pipelines = tiny_data / "prepared/manifest.json", tiny_data / "augment"
    for task, (train, overrides) in TRAIN.items():
        cfg = tiny_config(root, *overrides)
        train(cfg, manifest, pipelines, root / "models" / task)
        metrics = None
        if task == "multilabel":  # its bundle carries the thresholds its evaluation chose
            metrics = root / "multilabel.json"
            evaluate_multilabel(cfg, manifest, pipelines, root / "models" / task, metrics, root / "reports",
                                root / "tables")
        checked = export_bundle(task, cfg, root / "models" / task, manifest, metrics, root / task,
                                root / f"parity_{task}.json")
        assert checked["registry"]["version"] == 1
        assert checked["registry"]["promoted"] == (metrics is not None)  # no metric: no alias
    return root


# $MLFLOW_TRACKING_URI as the session found it. Lightning's MLFlowLogger and MLflow's fluent API
# call mlflow.set_tracking_uri, which exports the variable: after an in-process training it would
# send later tests' runs, and their subprocesses' (sweeps, dvc), to that training's store.
ORIGINAL_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI")


def restore_tracking_uri() -> None:
    if ORIGINAL_TRACKING_URI is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = ORIGINAL_TRACKING_URI


@pytest.fixture(autouse=True)
def no_leaked_tracking_uri():
    """Each test starts and ends with the session's $MLFLOW_TRACKING_URI (session fixtures that
    train run before function fixtures, so both ends are reset)."""
    restore_tracking_uri()
    yield
    restore_tracking_uri()
