"""`predict` checks a bundle and its options before reading any image: a damaged model, a bundle.json
that does not match what predict reads, or a bad number is one line, and a failed run leaves no JSON
that looks finished."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.predict.cli import JsonStream
from tests.conftest import PROJECT_ROOT

PREDICT = [sys.executable, "-c", "from pipeline.predict.cli import entry; entry()"]


def predict(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*PREDICT, *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)


@pytest.fixture
def image(tiny_data) -> Path:
    return next((tiny_data / "prepared").rglob("*.png"))


def copy_bundle(bundles: Path, task: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundles / task, tmp_path / task))


def assert_one_line_error(done: subprocess.CompletedProcess, *parts: str) -> None:
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for part in parts:
        assert part in lines[0], lines[0]


@pytest.mark.parametrize("damage", ["truncated", "text"])
def test_a_damaged_model_file_is_one_line_and_writes_no_json(bundles, image, tmp_path, damage):
    bundle = copy_bundle(bundles, "classifier", tmp_path)
    model = bundle / "model.onnx"
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a model\n")
    done = predict(str(bundle), str(image), "--json", str(tmp_path / "out.json"))
    assert_one_line_error(done, str(model), "ONNX Runtime cannot load it", "re-export")
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("task, key", [("detector", "postprocessing.nms_iou"), ("classifier", "preprocessing.resize"),
                                       ("multilabel", "postprocessing.thresholds"), ("fcn", "preprocessing.stride"),
                                       ("classifier", "labels")])
def test_a_bundle_json_missing_a_key_names_it(bundles, image, tmp_path, task, key):
    bundle = copy_bundle(bundles, task, tmp_path)
    spec = json.loads((bundle / "bundle.json").read_text())
    parent, _, leaf = key.rpartition(".")
    del (spec[parent] if parent else spec)[leaf]
    (bundle / "bundle.json").write_text(json.dumps(spec))
    done = predict(str(bundle), str(image), "--json", str(tmp_path / "out.json"))
    assert_one_line_error(done, str(bundle / "bundle.json"), f"missing key '{key}'")
    assert not (tmp_path / "out.json").exists()


def test_a_bundle_json_that_is_not_json_or_names_another_input(bundles, image, tmp_path):
    bundle = copy_bundle(bundles, "classifier", tmp_path)
    spec = (bundle / "bundle.json").read_text()
    (bundle / "bundle.json").write_text(spec[:-20])
    assert_one_line_error(predict(str(bundle), str(image)), "not valid JSON")
    (bundle / "bundle.json").write_text(json.dumps({**json.loads(spec), "input": "pixels"}))
    assert_one_line_error(predict(str(bundle), str(image)), "input 'pixels' is not the model's input (images)")


@pytest.mark.parametrize("option, value, message", [
    ("--batch", "0", "0 is below 1"), ("--batch", "-5", "-5 is below 1"), ("--batch", "two", "'two' is not an integer"),
    ("--threads", "-1", "-1 is below 0"), ("--max-pixels", "0", "0 is below 1")])
def test_numeric_options_are_validated(bundles, image, option, value, message):
    done = predict(str(bundles / "classifier"), str(image), option, value)
    assert done.returncode == 2 and f"argument {option}: {message}" in done.stderr


def test_the_json_takes_its_name_only_when_the_run_ends_well(tmp_path):
    stream = JsonStream(tmp_path / "r.json", "object")
    stream.add({"a": 1.0}, "x.png")
    assert not (tmp_path / "r.json").exists()  # while running: a partial file beside it
    stream.discard()
    assert list(tmp_path.iterdir()) == []
    stream = JsonStream(tmp_path / "r.json", "list")
    stream.add({"a": 1})
    stream.close()
    assert json.loads((tmp_path / "r.json").read_text()) == [{"a": 1}] and len(list(tmp_path.iterdir())) == 1
