"""Int8 bundles: ONNX Runtime's static quantization, checked against the fp32 graph on validation
images; `predict --int8` runs it; one that loses too much is not shipped."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from pipeline.export.build import export_bundle
from pipeline.predict.bundle import INT8_FILE, Bundle
from pipeline.predict.bundled import probabilities
from pipeline.predict.cli import main as predict
from tests.conftest import EXPORT, TRAIN, tiny_config
from tests.helpers import noise_image

INT8 = ["export.int8.enabled=true", "export.int8.calibration_images=16", "export.register=false"]


@pytest.mark.parametrize("task", ["classifier", "detector"])
def test_an_int8_model_is_shipped_with_its_check_and_predict_runs_it(task, bundles, tiny_data, tmp_path, capsys):
    if task in EXPORT:  # the session's bundle was exported with int8 (tests/conftest.py)
        bundle = bundles / task
        report = json.loads((bundles / f"parity_{task}.json").read_text())["int8"]
    else:
        cfg = tiny_config(tmp_path, *TRAIN[task], *INT8, "export.int8.max_drop=1.0")
        bundle = tmp_path / "bundle"
        report = export_bundle(task, cfg, bundles / "models" / task, tiny_data / "prepared/manifest.json", None,
                               bundle, tmp_path / "parity.json")["int8"]
    assert report["shipped"] and report["images"] > 0 and report["calibration_images"] == 16
    assert report["metric"] == {"classifier": "top1_agreement", "detector": "map_50"}[task]
    assert report["drop"] == pytest.approx(report["fp32"] - report["int8"])
    assert report["size_mb"]["int8"] < report["size_mb"]["fp32"]
    spec = json.loads((bundle / "bundle.json").read_text())
    card = json.loads((bundle / "card.json").read_text())
    assert spec["int8"] == INT8_FILE and INT8_FILE in card["files"] and card["parity"]["int8"] == report
    fp32, int8 = Bundle.load(bundle), Bundle.load(bundle, int8=True)
    assert fp32.session._model_path.endswith("model.onnx") and int8.session._model_path.endswith(INT8_FILE)
    if task == "classifier":
        images = [noise_image(64, 48, seed) for seed in range(3)]
        a, b = probabilities(fp32, images), probabilities(int8, images)
        assert np.abs(a - b).max() < 0.2 and not np.array_equal(a, b)  # close, but another graph
    assert "QuantizeLinear" in {node.op_type for node in onnx.load(str(bundle / INT8_FILE)).graph.node}
    capsys.readouterr()
    assert predict([str(bundle), str(tiny_data / "prepared/images"), "--int8", "--quiet"]) == 0
    assert capsys.readouterr().out.strip()


def test_an_int8_model_that_loses_too_much_is_not_shipped(bundles, tiny_data, tmp_path, capsys):
    # the decision is the task's metric against max_drop, whatever the task: the classifier's export is the quickest
    cfg = tiny_config(tmp_path, *TRAIN["classifier"], *INT8, "export.int8.max_drop=-1.0")  # any drop is too much
    checked = export_bundle("classifier", cfg, bundles / "models/classifier", tiny_data / "prepared/manifest.json",
                            None, tmp_path / "bundle", tmp_path / "parity.json")
    assert checked["int8"]["shipped"] is False and not (tmp_path / "bundle" / INT8_FILE).exists()
    assert "the int8 model is not shipped" in capsys.readouterr().err
    assert "int8" not in json.loads((tmp_path / "bundle/bundle.json").read_text())
    with pytest.raises(ValueError, match="this bundle has no int8 model; export it with -S export.int8.enabled=true"):
        Bundle.load(tmp_path / "bundle", int8=True)
