"""A trained model evaluated on another dataset (`python -m pipeline.evaluate_on`): the same numbers
as the model's own evaluation on the same images, whatever order the other dataset lists its
classes in; a run of its own in MLflow; clear refusals."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipeline.data.manifest import Manifest
from pipeline.detect.evaluate import evaluate_detector
from pipeline.evaluate_on import evaluate_on, evaluation_config, main, model_files
from pipeline.tasks import get_task
from pipeline.tracking import PARENT_TAG, tracking_uri
from pipeline.training import RUN_FILE
from tests.conftest import tiny_config
from tests.helpers import Truth, write_voc


def voc_copy_of_val(tiny_data: Path, root: Path) -> Manifest:
    """The tiny data's validation images as a Pascal VOC dataset whose own split puts them all in
    val, plus one image of a class the model does not know."""
    manifest = Manifest.read(tiny_data / "prepared/manifest.json")
    samples = manifest.split("val")
    truths = [Truth(f"val_{i}.png", s.width, s.height, s.boxes, [manifest.classes[c] for c in s.box_labels])
              for i, s in enumerate(samples)]
    truths.append(Truth("whale.png", 96, 96, [[10, 10, 40, 40]], ["whale"]))
    write_voc(root, truths)
    for truth, sample in zip(truths, samples):  # the same pixels as the model's own validation images
        shutil.copyfile(manifest.path_of(sample), root / "images" / truth.name)
    (root / "ImageSets/Main").mkdir(parents=True)
    (root / "ImageSets/Main/val.txt").write_text("".join(f"{Path(t.name).stem}\n" for t in truths))
    return manifest


def rounded(value):
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return round(value, 6) if isinstance(value, float) else value


def confusion_rows(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="") as f:
        header, *rows = csv.reader(f)
    assert header == ["actual", "predicted"]
    return sorted(tuple(row) for row in rows)


def test_a_detector_scores_the_same_on_another_dataset_holding_its_validation_images(bundles, tiny_data, tmp_path,
                                                                                     capsys):
    model = bundles / "models/detector"
    manifest = voc_copy_of_val(tiny_data, tmp_path / "voc")
    store = [f"logger.local_store={bundles / 'mlruns/mlflow.db'}",  # the trainings' store: the run nests
             f"logger.artifact_root={bundles / 'mlruns/artifacts'}"]
    results, out = evaluate_on("detector", model, ["data=voc", f"data.root={tmp_path / 'voc'}",
                                                   "data.split.source=given", *store], tmp_path / "on_voc", "val")
    assert out == tmp_path / "on_voc"
    other = Manifest.read(out / "prepared/manifest.json")
    assert other.classes == manifest.classes  # the model's ids, although VOC's own order is alphabetical
    assert sorted(other.classes) != other.classes
    assert "1 image(s) hold classes the model does not know" in capsys.readouterr().out
    assert json.loads((out / "prepared/stats.json").read_text())["rejected_by_code"] == {"unknown_class": 1}

    cfg = tiny_config(tmp_path, "evaluate.detector.splits=[val]")
    own_run = MlflowClient(tracking_uri(cfg.logger)).create_run("0").info.run_id  # keeps the training's run clean
    own = evaluate_detector(cfg, tiny_data / "prepared/manifest.json", tiny_data / "augment", model,
                            tmp_path / "own.json", tmp_path / "own_reports", tmp_path / "own_tables", run_id=own_run)
    assert set(results) == set(own) == {"val", "anchors"} and rounded(results["val"]) == rounded(own["val"])
    assert len({c["ap50"] for c in own["val"]["per_class"].values()}) == len(manifest.classes)  # told apart
    rows = confusion_rows(out / "tables/confusion/val.csv")
    assert rows == confusion_rows(tmp_path / "own_tables/confusion/val.csv")
    objects = sum(len(s.boxes) for s in manifest.split("val"))
    assert sum(actual != "background" for actual, _ in rows) == objects  # every object is in the table
    assert (out / "reports/detector/pr_val.png").is_file() and (out / "reports/detector/confusion_val.png").is_file()

    client = MlflowClient(f"sqlite:///{bundles / 'mlruns/mlflow.db'}")
    trained = json.loads((model / RUN_FILE).read_text())["run_id"]
    (run,) = client.search_runs([client.get_run(trained).info.experiment_id],
                                f"tags.`{PARENT_TAG}` = '{trained}' and tags.stage = 'evaluate_on@detector'")
    assert run.info.status == "FINISHED" and run.info.run_name == "voc · detector evaluated"
    assert run.data.metrics["eval_val_map_50"] == pytest.approx(results["val"]["map_50"])
    assert run.inputs.dataset_inputs[0].dataset.name == "voc"
    assert "eval_val_map_50" not in client.get_run(trained).data.metrics  # the training's run is left as it was


def test_a_patch_classifier_is_evaluated_on_the_objects_of_detection_data(bundles, tiny_data, tmp_path):
    """Its last class (background) is no object's class: the data keeps the object classes."""
    from pipeline.classify.evaluate import evaluate_classifier

    model = bundles / "models/classifier"
    store = [f"logger.local_store={tmp_path / 'mlruns/mlflow.db'}", f"logger.artifact_root={tmp_path / 'artifacts'}"]
    results, out = evaluate_on("classifier", model, ["data=synthetic_tiny", *store], tmp_path / "on_tiny", "val,test")
    cfg = tiny_config(tmp_path, "evaluate.classifier.splits=[val,test]")
    own_run = MlflowClient(tracking_uri(cfg.logger)).create_run("0").info.run_id
    own = evaluate_classifier(cfg, tiny_data / "prepared/manifest.json", tiny_data / "augment", model,
                              tmp_path / "own.json", tmp_path / "own_reports", tmp_path / "own_tables", run_id=own_run)
    assert set(results) == {"val", "test"} and rounded(results) == rounded(own)
    assert Manifest.read(out / "prepared/manifest.json").classes == json.loads((model / "model.json").read_text())[
        "classes"][:-1]


def test_what_cannot_be_evaluated_is_refused_in_one_line(bundles, tmp_path, capsys):
    with pytest.raises(ValueError, match="is an exported bundle; evaluate the trained model folder"):
        model_files(bundles / "detector")
    old = tmp_path / "old"
    shutil.copytree(bundles / "models/detector", old)
    (old / "preprocess.json").unlink()
    with pytest.raises(FileNotFoundError, match="no preprocess.json .* train it again"):
        model_files(old)
    with pytest.raises(ValueError, match="holds classification data; a detector is evaluated on detection data"):
        evaluation_config(["data=folders"], get_task("detector"), ["a", "b"], "all")
    with pytest.raises(SystemExit):
        main(["detector", str(tmp_path / "nothing"), "data=synthetic_tiny"])
    assert capsys.readouterr().err.strip() == (f"error: {tmp_path / 'nothing'}: no model.json; give a trained model "
                                               "folder (models/<model>)")
