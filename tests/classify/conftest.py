"""A tiny prepared synthetic dataset with its saved pipelines, shared by the classifier tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from pipeline.augment.stage import run_augment
from pipeline.config import compose
from pipeline.data.prepare import prepare


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    cfg = compose(["data=synthetic_tiny"])
    prepare(cfg.data, 42, root / "prepared", root / "rp", root / "m.json")
    run_augment(cfg.augment, root / "prepared/manifest.json", root / "augment", root / "ra", 42)
    return root


def tiny_config(tmp_path: Path, *overrides: str):
    """The project config for the tiny data, with an MLflow store of the test's own."""
    cfg = compose(["data=synthetic_tiny", "trainer.enable_progress_bar=false", *overrides])
    cfg.logger = OmegaConf.merge(cfg.logger, {"local_store": str(tmp_path / "mlruns/mlflow.db"),
                                              "artifact_root": str(tmp_path / "mlruns/artifacts"),
                                              "tracking_uri": None})
    return cfg
