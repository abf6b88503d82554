"""Bundles from tiny trained models: parity, contents, and `predict` run without torch."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.predict.bundle import BUNDLE_FILE, CARD_FILE, INT8_FILE, ONNX_FILE, PT2_FILE, SAMPLES_FILE
from tests.conftest import EXPORT, PROJECT_ROOT, TRAIN, tiny_config


def test_the_alias_moves_only_when_the_key_metric_improves(bundles, monkeypatch):
    from mlflow import MlflowClient

    from pipeline.classify.evaluate import load_classifier
    from pipeline.classify.export import ClassifierGraph
    from pipeline.export.registry import register
    from pipeline.tracking import tracking_uri

    cfg = tiny_config(bundles)
    graph = ClassifierGraph(load_classifier(bundles / "models/classifier")[0])
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    training = json.loads((bundles / "models/classifier/run.json").read_text())["run_id"]
    trained = MlflowClient(tracking_uri=tracking_uri(cfg.logger)).get_run(training).info
    moves = [register(cfg, "classifier", bundles / "classifier", bundles / "models/classifier", graph,
                      {"val": {"accuracy": accuracy}})["promoted"] for accuracy in (0.5, 0.4, 0.7, 0.7)]
    assert moves == [True, False, True, False]
    assert "MLFLOW_TRACKING_URI" not in os.environ  # the fluent API's URI does not leak to later runs
    uri = tracking_uri(cfg.logger)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = client.search_model_versions("name='cvpipe-classifier'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3, 4, 5]  # the export's own, then four
    champion = client.get_model_version_by_alias("cvpipe-classifier", "champion")
    assert int(champion.version) == 4 and champion.tags["key_value"] == "0.700000"
    assert champion.tags["pytorch_model_uri"].startswith("models:/")
    run = client.get_run(champion.run_id)
    assert run.info.run_id == champion.tags["training_run"] == training
    # logging the models reopened the training's run; its end (its duration in the UI) is the training's
    assert (run.info.end_time, run.info.status) == (trained.end_time, "FINISHED") and trained.end_time


def test_a_training_whose_run_the_store_lost_is_exported_into_a_new_run_that_names_it(bundles, tmp_path, monkeypatch):
    """`mlruns/` removed, then DVC restored the training from its cache: the export logs and
    registers the model in a new run tagged with the training's run id, with a warning."""
    from mlflow import MlflowClient

    from pipeline.classify.evaluate import load_classifier
    from pipeline.classify.export import ClassifierGraph
    from pipeline.export.registry import register
    from pipeline.tracking import tracking_uri

    cfg = tiny_config(tmp_path)  # a store that never saw the training
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    graph = ClassifierGraph(load_classifier(bundles / "models/classifier")[0])
    training = json.loads((bundles / "models/classifier/run.json").read_text())["run_id"]
    with pytest.warns(UserWarning, match=f"was logged to run {training}, which this tracking store does not have"):
        done = register(cfg, "classifier", bundles / "classifier", bundles / "models/classifier", graph,
                        {"val": {"accuracy": 0.5}})
    assert done["version"] == 1 and done["promoted"]
    uri = tracking_uri(cfg.logger)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version("cvpipe-classifier", "1")
    assert version.tags["training_run"] == training and version.run_id == version.tags["export_run"] != training
    run = client.get_run(version.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["training_run"] == training
    assert {"classifier_onnx", "classifier_pytorch"} <= {m.name for m in client.search_logged_models(
        experiment_ids=[run.info.experiment_id])}


@pytest.mark.parametrize("task", sorted(TRAIN))
def test_bundle_is_parity_checked_and_complete(bundles, task):
    bundle = bundles / task
    int8 = {INT8_FILE} if task in EXPORT else set()  # exported with its int8 model (tests/conftest.py)
    assert {p.name for p in bundle.iterdir()} == {ONNX_FILE, PT2_FILE, BUNDLE_FILE, CARD_FILE, SAMPLES_FILE} | int8
    parity = json.loads((bundles / f"parity_{task}.json").read_text())
    assert parity["onnx_max_abs_diff"] <= 1e-4 and parity["pt2_max_abs_diff"] <= 1e-4
    assert parity["failed"] == []
    if task == "detector":  # compared on real detections, box for box and score for score
        found = parity["detections"]
        assert found["detections"] > 0 and found["unmatched"] == 0, found
        assert found["matched"] >= found["detections"] - found["unmatched_near_boundary"]
        assert found["score_max_abs_diff"] <= found["limits"]["score_tolerance"]
    if task == "fcn":  # dynamic height and width: checked at two input sizes
        assert len({tuple(shape[2:]) for shape in parity["inputs"]}) == 2
    card = json.loads((bundle / CARD_FILE).read_text())
    assert card["task"] == task and len(card["data"]["manifest_sha256"]) == 64 and card["exported"]
    assert card["config"]["seed"] == 42 and card["git_commit"] and card["training_run"]
    for name in (BUNDLE_FILE, CARD_FILE):  # no absolute paths leak into what is shipped
        text = (bundle / name).read_text()
        assert str(Path.home()) not in text and str(PROJECT_ROOT) not in text and "/tmp" not in text


BLOCKER = ("import sys, importlib.abc\n"
           "class Block(importlib.abc.MetaPathFinder):\n"
           "    def find_spec(self, name, path=None, target=None):\n"
           "        if name.split('.')[0] in ('torch', 'torchvision', 'lightning', 'timm'):\n"
           "            raise ImportError(f'{name} is blocked in this test')\n"
           "sys.meta_path.insert(0, Block())\n")


def run_python(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
    return subprocess.run([sys.executable, "-c", BLOCKER + code], capture_output=True, text=True, timeout=300,
                          env=env, cwd=PROJECT_ROOT)


def run_predict(args: list[str]) -> subprocess.CompletedProcess:
    """`predict` in a fresh interpreter where importing torch fails."""
    return run_python(f"from pipeline.predict.cli import main\nsys.exit(main({args!r}))\n")


def test_the_blocker_really_blocks_torch():
    done = run_python("import torch\n")
    assert done.returncode != 0 and "torch is blocked" in done.stderr


def test_predict_classifies_a_folder_without_torch(bundles, tiny_data, tmp_path):
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True)
    sources = sorted((tiny_data / "prepared").rglob("*.png"))[:3] or sorted(tiny_data.rglob("*.png"))[:3]
    for i, source in enumerate(sources):
        target = folder / ("sub" if i == 0 else "") / f"img{i}.png"
        target.write_bytes(source.read_bytes())
    (folder / "broken.jpg").write_bytes(b"not an image")
    done = run_predict([str(bundles / "classifier"), str(folder), "--json", str(tmp_path / "p.json")])
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 1 and "broken.jpg" in done.stderr, done.stderr  # reported, the rest goes on
    assert len(lines) == len(sources)
    assert all(re.fullmatch(r"img\d\.png is an? \w+( \w+=\d+\.\d{3}%)+", line) for line in lines), lines
    probabilities = json.loads((tmp_path / "p.json").read_text())
    assert len(probabilities) == len(sources) and all(abs(sum(p.values()) - 1) < 1e-4 for p in probabilities.values())
    assert re.search(r"predict: \d+/4 images", done.stderr)


def test_predict_detects_and_draws_heatmaps_without_torch(bundles, tiny_data, tmp_path):
    scenes = sorted((tiny_data / "prepared").rglob("*.png"))[:2]
    done = run_predict([str(bundles / "detector"), *map(str, scenes), "--json", str(tmp_path / "coco.json"),
                        "--out", str(tmp_path / "boxes"), "--quiet"])
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "coco.json").read_text())
    assert isinstance(results, list) and results  # the tiny detector finds boxes (its parity check says how many)
    assert all({"image_id", "category_id", "bbox", "score"} <= set(r) for r in results)
    assert len(list((tmp_path / "boxes").glob("*_boxes.png"))) == 2
    done = run_predict([str(bundles / "fcn"), str(scenes[0]), "--out", str(tmp_path / "heat"), "--quiet"])
    assert done.returncode == 0, done.stderr
    assert "peak" in done.stdout and len(list((tmp_path / "heat").glob("*_heatmap.png"))) == 1
