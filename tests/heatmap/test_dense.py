"""Dense fine-tuning: cell targets from boxes, and the train@fcn model folder on tiny data."""

from __future__ import annotations

import json

import torch
from mlflow.tracking import MlflowClient

from pipeline.classify.evaluate import load_classifier
from pipeline.heatmap.dense import IGNORE, cell_targets, training_view
from pipeline.heatmap.fcn import FullyConvolutional, window_geometry
from pipeline.heatmap.train import load_fcn, train_fcn
from pipeline.tracking import tracking_uri
from tests.conftest import tiny_config


def test_cells_take_the_class_of_the_box_they_look_for():
    g = window_geometry(8, (20, 20))  # context 0.25: each cell looks for a 16 x 16 object at its centre
    boxes = torch.tensor([[18.0, 2.0, 34.0, 18.0]])  # exactly cell (0, 2)'s object box (centre 26, 10)
    target = cell_targets(g, 3, 4, boxes, torch.tensor([1]), 0.25, background=4)
    assert target[0, 2] == 1
    assert target[0, 1] == IGNORE and target[1, 2] == IGNORE  # one stride off: IoU 0.33, neither
    assert target[2, 0] == 4  # far away: background
    assert (target == 1).sum() == 1
    empty = cell_targets(g, 3, 4, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), 0.25, background=4)
    assert (empty == 4).all()


def test_train_fcn_converts_then_fine_tunes_in_one_run(tiny_data, tmp_path):
    manifest, pipelines = tiny_data / "prepared/manifest.json", tiny_data / "augment"
    cfg = tiny_config(tmp_path, "train.fcn.epochs=1", "train.fcn.dense.epochs=0")
    train_fcn(cfg, manifest, pipelines, tmp_path / "plain")
    converted, info = load_fcn(tmp_path / "plain")
    net, _ = load_classifier(tmp_path / "plain/classifier")
    x = torch.randint(0, 256, (1, 3, 90, 117), dtype=torch.uint8)
    with torch.no_grad():  # no dense epochs: the FCN is exactly the converted classifier
        assert torch.equal(converted(x), FullyConvolutional(net, info["input_size"]).eval()(x))
    assert info["stride"] == 8 and info["valid"] and info["dense_epochs"] == 0

    cfg = tiny_config(tmp_path, "train.fcn.epochs=1", "train.fcn.dense.epochs=2")
    result = train_fcn(cfg, manifest, pipelines, tmp_path / "tuned")
    tuned, info = load_fcn(tmp_path / "tuned")
    assert info["dense_epochs"] == 2 and set(json.loads((tmp_path / "tuned/fcn.json").read_text())) >= {
        "model", "classes", "input_size", "stride", "patch_context"}
    with torch.no_grad():
        assert not torch.allclose(tuned(x), converted(x))  # the dense epochs changed the weights
    # the dense phase trained in channels-last layout (pipeline/models/layout.py), as saved
    saved = {name: torch.load(tmp_path / folder / "fcn.pt")["features.0.0.weight"] for name, folder in
             (("plain", "plain"), ("tuned", "tuned"))}
    assert [w.is_contiguous(memory_format=torch.channels_last) for w in saved.values()] == [False, True]
    client = MlflowClient(tracking_uri(cfg.logger))
    run = client.get_run(result["run_id"])
    assert run.data.tags["stage"] == "train@fcn"
    assert {"val_acc", "dense_train_loss", "dense_val_loss", "dense_val_cell_acc"} <= set(run.data.metrics)
    assert len(client.get_metric_history(run.info.run_id, "dense_val_loss")) == 2
    assert run.data.params["model.classifier.name"] == "small_alexnet"
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "fcn")}
    assert logged == {"fcn/fcn.pt", "fcn/fcn.json"}
    assert not any(p.suffix == ".ckpt" for p in (tmp_path / "tuned").iterdir())  # only the patch classifier's


def test_object_centred_views_show_the_object_at_the_window_size_where_a_cell_sees_it():
    image = torch.zeros(3, 160, 160)
    image[:, 40:60, 100:120] = 255.0  # a 20 px square object
    boxes = torch.tensor([[100.0, 40.0, 120.0, 60.0]])
    for seed in range(20):
        torch.manual_seed(seed)
        view, moved = training_view(image, boxes, object_side=51.2, window=(64, 64), crop=128, scales=(0.5, 4.0),
                                    scale_jitter=0.0, object_fraction=1.0)
        x1, y1, x2, y2 = moved[0].tolist()
        assert view.shape == (3, 128, 128) and abs((x2 - x1) - 51.2) < 1e-3  # resized to the window's object
        assert 32 - 1 <= (x1 + x2) / 2 <= 96 + 1 and 32 - 1 <= (y1 + y2) / 2 <= 96 + 1  # a cell centre can reach it
        ys, xs = torch.nonzero(view[0] > 127, as_tuple=True)  # the pixels moved with the box
        assert abs(int(xs.min()) - x1) <= 1.5 and abs(int(xs.max()) + 1 - x2) <= 1.5
        assert abs(int(ys.min()) - y1) <= 1.5 and abs(int(ys.max()) + 1 - y2) <= 1.5
