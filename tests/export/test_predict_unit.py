"""`predict`'s own code without a trained model: the command on bundles whose ONNX session is a
stand-in with known outputs (what it prints, writes and draws, per task), bundle.json checks,
options, streaming JSON and batching. Fast: no torch model, no training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.predict import cli, draw
from pipeline.predict.bundle import FORMAT_VERSION, Bundle, check_spec
from pipeline.tasks import TASKS
from tests.export.test_predict_numbers import FixedSession

LABELS = ["apple", "bee"]
FORMAT = {"format": "onnx", "format_version": FORMAT_VERSION}


def mean_colour_session(activation):
    """Per image: class 0 grows with the red channel, class 1 with the blue one."""
    def outputs(x):
        mean = x.mean(axis=(2, 3)) / 255  # N x 3
        return [activation(np.stack([mean[:, 0] - mean[:, 2], mean[:, 2] - mean[:, 0]], axis=1) * 4)]
    return outputs


def softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


IMAGE = {"input_size": [8, 8], "resize": "stretch", "pad_fill": 114}
SPECS = {
    "classifier": ({"preprocessing": IMAGE, "postprocessing": {}}, mean_colour_session(softmax)),
    "multilabel": ({"preprocessing": IMAGE, "postprocessing": {"thresholds": [0.5, 0.5]}},
                   mean_colour_session(sigmoid)),
}


def bundle(task: str, outputs=None, **spec) -> Bundle:
    base, session = SPECS.get(task, ({}, None))
    return Bundle(Path("."), {"task": task, "labels": LABELS, "input": "images", **base, **spec},
                  FixedSession(outputs or session))


def write(folder: Path, name: str, colour, size=(12, 10)) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "in"
    write(folder, "red.png", (255, 0, 0))
    write(folder, "sub/blue.png", (0, 0, 255))
    write(folder, "sub/deeper/red2.jpg", (250, 0, 0))
    (folder / "notes.txt").write_text("not an image, not listed")
    return folder


def test_the_classifier_prints_a_line_per_image_and_streams_probabilities(images, tmp_path, capsys):
    status = cli.run(bundle("classifier"), [str(images)], tmp_path / "p.json", None, 2, quiet=False)
    out, err = capsys.readouterr()
    assert status == 0
    lines = out.splitlines()
    assert [line.split(" is ")[0] for line in lines] == ["red.png", "blue.png", "red2.jpg"]  # sorted, recursive
    assert lines[0].startswith("red.png is an apple apple=") and lines[1].startswith("blue.png is a bee ")
    saved = json.loads((tmp_path / "p.json").read_text())
    assert list(saved) == [str(images / "red.png"), str(images / "sub/blue.png"), str(images / "sub/deeper/red2.jpg")]
    assert saved[str(images / "red.png")]["apple"] == pytest.approx(softmax(np.array([[4.0, -4.0]]))[0, 0], abs=1e-3)
    assert "predict: 3/3 images" in err
    assert [len(x) for x in bundle_calls(images, tmp_path)] == [2, 1]  # batches of 2


def test_the_classifier_draws_each_image_with_a_bar_per_class(tmp_path):
    """A purple image (12 x 10) is an apple with p = softmax(4 (r - b) / 255, -4 (r - b) / 255): the
    picture is the image at 256 px wide, then a bar per class, that share of the width, tinted."""
    colour = (140, 0, 115)
    write(tmp_path / "in", "purple.png", colour)
    cli.run(bundle("classifier"), [str(tmp_path / "in")], None, tmp_path / "pics", 2, quiet=True)
    picture = np.asarray(Image.open(tmp_path / "pics/purple_classes.png").convert("RGB"))
    top = round(256 * 10 / 12)  # the image's height at 256 px wide
    assert picture.shape == (top + 2 * 16 + 4, 256, 3)
    assert tuple(picture[top // 2, 128]) == colour
    z = 4 * (colour[0] - colour[2]) / 255
    apple = float(softmax(np.array([[z, -z]]))[0, 0])
    white = (255, 255, 255)
    for row, share in ((top + 16, apple), (top + 32, 1 - apple)):  # below each bar's text
        end = round(share * 256)
        assert tuple(picture[row, end - 3]) != white and tuple(picture[row, end + 3]) == white, (share, end)


def bundle_calls(images, tmp_path):
    b = bundle("classifier")
    cli.run(b, [str(images)], None, None, 2, quiet=True)
    return b.session.inputs


def test_an_unreadable_image_is_reported_and_the_rest_goes_on(images, tmp_path, capsys):
    (images / "broken.png").write_bytes(b"\x89PNG broken")
    status = cli.run(bundle("classifier"), [str(images)], tmp_path / "p.json", None, 16, quiet=False)
    out, err = capsys.readouterr()
    assert status == 1 and len(out.splitlines()) == 3
    assert "broken.png" in err and "1 of 4 images could not be read" in err
    assert "predict: 4/4 images" in err  # the unreadable one counted as done
    assert len(json.loads((tmp_path / "p.json").read_text())) == 3


def test_multilabel_lists_the_classes_above_their_thresholds_and_captions_pictures(images, tmp_path, capsys):
    status = cli.run(bundle("multilabel"), [str(images / "red.png"), str(images / "sub/blue.png")],
                     tmp_path / "t.json", tmp_path / "pics", 16, quiet=True)
    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert lines[0].startswith("red.png: 1 classes above threshold: apple 0.98")
    assert lines[1].startswith("blue.png: 1 classes above threshold: bee 0.98")
    saved = json.loads((tmp_path / "t.json").read_text())
    assert list(saved[str(images / "red.png")]) == ["apple"]
    assert {p.name for p in (tmp_path / "pics").iterdir()} == {"red_classes.png", "blue_classes.png"}


def test_the_detector_writes_coco_results_in_image_pixels_and_draws_strong_boxes(images, tmp_path, capsys):
    def outputs(x):  # two anchors: a bee at input (2, 2, 6, 6) of 8 x 8 with 0.9; an apple with 0.2
        n = len(x)
        scores = np.tile(np.array([[[0.0, 0.9], [0.2, 0.0]]], np.float32), (n, 1, 1))
        boxes = np.tile(np.array([[[2, 2, 6, 6], [0, 0, 4, 4]]], np.float32) / 8, (n, 1, 1))
        return [scores, boxes]

    post = {"score_threshold": 0.1, "nms_iou": 0.5, "top_k": 10, "max_detections": 5,
            "vote_iou": 0.5, "vote_power": 2.0}
    b = bundle("detector", outputs, preprocessing=IMAGE, postprocessing=post)
    status = cli.run(b, [str(images / "red.png"), str(images / "sub/blue.png")], tmp_path / "d.json",
                     tmp_path / "pics/new", 16, quiet=True)  # a folder made with its parents
    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert lines == ["red.png: 1 objects (score >= 0.3): bee 0.90", "blue.png: 1 objects (score >= 0.3): bee 0.90"]
    results = json.loads((tmp_path / "d.json").read_text())
    assert [(r["image_id"], r["category"], r["category_id"]) for r in results] == [
        (1, "bee", 2), (1, "apple", 1), (2, "bee", 2), (2, "apple", 1)]
    # a 12 x 10 image stretched to 8 x 8: x by 12/8, y by 10/8; COCO boxes are x, y, width, height
    assert results[0]["bbox"] == [3.0, 2.5, 6.0, 5.0] and results[0]["score"] == 0.9
    assert results[0]["file_name"] == str(images / "red.png")
    assert {p.name for p in (tmp_path / "pics/new").iterdir()} == {"red_boxes.png", "blue_boxes.png"}


def test_the_heatmap_network_reports_each_object_class_peak(images, tmp_path, capsys):
    def outputs(x):  # cells for a 16 px window, stride 4; "apple" peaks at 0.8, "background" elsewhere
        h, w = (x.shape[2] - 16) // 4 + 1, (x.shape[3] - 16) // 4 + 1
        probs = np.zeros((1, 2, h, w), np.float32)
        probs[0, 0, 0, 0], probs[0, 1] = 0.8, 0.2
        return [probs]

    pre = {"window": [16, 16], "stride": 4, "scales": [1.0], "mean": [0.5, 0.5, 0.5]}
    b = Bundle(Path("."), {"task": "fcn", "labels": ["apple", "background"], "input": "images",
                           "preprocessing": pre, "postprocessing": {"background": "background"}}, FixedSession(outputs))
    write(images, "scene.png", (10, 200, 10), size=(40, 30))
    status = cli.run(b, [str(images / "scene.png")], tmp_path / "h.json", tmp_path / "pics", 16, quiet=True)
    assert status == 0
    assert capsys.readouterr().out.strip() == "scene.png: peak apple=0.800"
    assert json.loads((tmp_path / "h.json").read_text()) == {str(images / "scene.png"): {"apple": pytest.approx(0.8)}}
    assert (tmp_path / "pics/scene_heatmap.png").is_file()


def test_no_images_and_missing_paths_are_one_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no image files found"):
        cli.run(bundle("classifier"), [str(tmp_path / "empty")], None, None, 4, quiet=True)
    with pytest.raises(FileNotFoundError, match="nowhere: no such image or folder"):
        list(cli.image_paths([str(tmp_path / "nowhere")]))


def test_a_failed_run_leaves_no_json_that_looks_finished(images, tmp_path):
    def broken(x):
        raise RuntimeError("the session failed")

    with pytest.raises(RuntimeError):
        cli.run(bundle("classifier", broken), [str(images)], tmp_path / "p.json", None, 4, quiet=True)
    assert list(tmp_path.glob("*.json")) == [] and list(tmp_path.glob(".*partial")) == []


def test_a_class_exactly_at_its_threshold_is_listed():
    from pipeline.multilabel.bundled import tag

    b = bundle("multilabel", lambda x: [np.array([[0.5, 0.49]], np.float32)])
    assert tag(b, [np.zeros((8, 8, 3), np.uint8)]) == [[("apple", 0.5)]]


def test_json_streams_are_valid_objects_and_lists(tmp_path):
    for kind, entries, expected in (("object", [("a", 1), ("b", [2])], {"a": 1, "b": [2]}),
                                    ("list", [(None, {"x": 1}), (None, 2)], [{"x": 1}, 2])):
        stream = cli.JsonStream(tmp_path / f"{kind}.json", kind)
        for key, value in entries:
            stream.add(value, key)
        assert not (tmp_path / f"{kind}.json").exists()  # only once closed
        stream.close()
        assert json.loads((tmp_path / f"{kind}.json").read_text()) == expected
    empty = cli.JsonStream(tmp_path / "empty.json", "list")
    empty.close()
    assert json.loads((tmp_path / "empty.json").read_text()) == []
    cli.JsonStream(None, "list").add(1)  # no file asked for: nothing written, no error


def test_batches_group_images_and_skip_unreadable_ones(tmp_path, capsys):
    paths = [write(tmp_path, f"{i}.png", (i, i, i)) for i in range(5)]
    (tmp_path / "bad.png").write_bytes(b"no")
    failed = []
    groups = list(cli.batches([*paths[:2], tmp_path / "bad.png", *paths[2:]], 2, failed))
    assert [[p.name for p, _ in g] for g in groups] == [["0.png", "1.png"], ["2.png", "3.png"], ["4.png"]]
    assert failed == [str(tmp_path / "bad.png")] and "bad.png" in capsys.readouterr().err
    assert groups[0][1][1].shape == (10, 12, 3) and groups[0][1][1][0, 0].tolist() == [1, 1, 1]


@pytest.mark.parametrize("text, low, ok", [("3", 1, True), ("1", 1, True), ("0", 1, False), ("-5", 0, False),
                                           ("0", 0, True), ("two", 1, False), ("1.5", 1, False)])
def test_numeric_options_are_checked(text, low, ok):
    import argparse

    parse = cli.at_least(low)
    if ok:
        assert parse(text) == int(text)
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


def test_format_line_names_the_best_class_with_its_article():
    from pipeline.classify.bundled import format_line

    assert format_line("x.png", np.array([0.25, 0.75]), ["owl", "cat"]) == "x.png is a cat owl=25.000% cat=75.000%"
    assert format_line("y.png", np.array([0.9, 0.1]), ["owl", "cat"]).startswith("y.png is an owl ")


@pytest.mark.parametrize("task", sorted(TASKS))
def test_bundle_json_missing_any_key_its_task_needs_is_named(task, tmp_path):
    def complete() -> dict:
        spec = {"task": task, "labels": ["a"], "input": "images", "preprocessing": {}, "postprocessing": {}, **FORMAT}
        for key in TASKS[task].step("bundled").required:
            section, name = key.split(".")
            spec[section][name] = [8, 8] if name in ("input_size", "window") else 1
        check_spec(spec, tmp_path / "bundle.json")  # complete: passes
        return spec

    for key in TASKS[task].step("bundled").required:
        spec = complete()
        section, name = key.split(".")
        del spec[section][name]
        with pytest.raises(ValueError, match=rf"bundle.json: missing key '{key}' \(a {task} bundle needs it\)"):
            check_spec(spec, tmp_path / "bundle.json")
    for broken, message in ((["a list"], "not a JSON object"),
                            ({**complete(), "task": "segmenter"}, "'segmenter' is not one"),
                            ({**complete(), "labels": []}, "'labels' must be a non-empty list")):
        with pytest.raises(ValueError, match=message):
            check_spec(broken, tmp_path / "bundle.json")


def test_pictures_draw_strong_boxes_only_and_colour_heatmaps_by_class():
    pixels = np.zeros((40, 40, 3), np.uint8)
    found = {"boxes": np.array([[2, 20, 10, 28], [28, 2, 38, 10]], np.float32), "scores": np.array([0.9, 0.1]),
             "labels": np.array([1, 0])}
    drawn = np.asarray(draw.boxes_picture(pixels, found, LABELS))
    assert tuple(drawn[28, 6]) == draw.PALETTE[1]  # the strong box's lower edge, in its class colour
    assert not drawn[:12, 26:].any()  # the weak one is not drawn
    probs = np.zeros((2, 40, 40), np.float32)
    probs[0, 30:, 30:] = 1.0
    heat = np.asarray(draw.heatmap_picture(pixels, probs, LABELS, background="bee"))
    assert tuple(heat[35, 35]) == tuple(round(0.6 * c) for c in draw.PALETTE[0]) and not heat[20, 20].any()
    sheet = draw.grid([Image.new("RGB", (10, 10), (255, 0, 0))] * 5, columns=4, cell=16)
    assert sheet.size == (64, 32)


def random_outputs(seed: int, anchors: int = 300, classes: int = 3):
    """Raw detector outputs with many overlapping candidates: scores A x K, boxes A x 4 (fractions)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.2, 0.8, (anchors, 2))
    sizes = rng.uniform(0.05, 0.4, (anchors, 2))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1).astype(np.float32)
    boxes[:5] = [-0.1, -0.2, 1.3, 0.5]  # some reach past the image: clipped
    return rng.uniform(0, 1, (anchors, classes)).astype(np.float32), boxes


@pytest.mark.parametrize("seed, settings", [
    (0, {"score_threshold": 0.05, "nms_iou": 0.5, "top_k": 1000, "max_detections": 100,
         "vote_iou": None, "vote_power": 2.0}),
    (1, {"score_threshold": 0.5, "nms_iou": 0.3, "top_k": 50, "max_detections": 20,
         "vote_iou": None, "vote_power": 2.0}),
    (2, {"score_threshold": 0.9, "nms_iou": 0.7, "top_k": 1000, "max_detections": 1000,
         "vote_iou": None, "vote_power": 2.0}),
])
def test_numpy_postprocessing_equals_torchvisions(seed, settings):
    """predict's numpy post-processing (threshold, top-k, per-class NMS, cut) against the pipeline's
    torchvision one (batched_nms) on the same raw outputs: the same detections, in the same order."""
    import torch
    from torchvision.ops import batched_nms, clip_boxes_to_image

    from pipeline.predict.postprocess import detections

    scores, boxes = random_outputs(seed)
    size = (160, 120)
    got = detections(scores, boxes, size, **settings)
    flat = torch.from_numpy(scores).flatten()
    keep = torch.nonzero(flat > settings["score_threshold"]).squeeze(1)
    keep = keep[flat[keep].argsort(descending=True, stable=True)[:settings["top_k"]]]
    anchor, labels = keep // scores.shape[1], keep % scores.shape[1]
    pixels = torch.from_numpy(boxes)[anchor] * torch.tensor([160, 120, 160, 120])
    pixels = clip_boxes_to_image(pixels, (120, 160))
    kept = batched_nms(pixels, flat[keep], labels, settings["nms_iou"])[:settings["max_detections"]]
    assert len(kept) > 0 and len(got["scores"]) == len(kept)
    np.testing.assert_allclose(got["boxes"], pixels[kept].numpy(), atol=1e-4)
    np.testing.assert_array_equal(got["labels"], labels[kept].numpy())
    np.testing.assert_allclose(got["scores"], flat[keep][kept].numpy())
    assert got["boxes"].min() >= 0 and got["boxes"][:, [0, 2]].max() <= 160 and got["boxes"][:, [1, 3]].max() <= 120


def test_iou_and_area_match_torchvision_and_handle_empty_boxes():
    import torch
    from torchvision.ops import box_iou

    from pipeline.predict.postprocess import area, iou_one_to_many

    _, boxes = random_outputs(3, anchors=20)
    boxes[1] = [0.5, 0.5, 0.5, 0.9]  # zero width
    ours = np.stack([iou_one_to_many(b, boxes) for b in boxes])
    np.testing.assert_allclose(ours, box_iou(torch.from_numpy(boxes), torch.from_numpy(boxes)).nan_to_num().numpy(),
                               atol=1e-5)
    assert area(np.array([[0, 0, 2, 3], [5, 5, 4, 9]], np.float32)).tolist() == [6.0, 0.0]  # inverted: no area


def test_nms_keeps_the_best_of_overlapping_boxes_per_class_only():
    from pipeline.predict.postprocess import nms

    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.6, 0.9, 0.8, 0.7], np.float32)
    labels = np.array([0, 0, 1, 0])
    assert nms(boxes, scores, labels, 0.5).tolist() == [1, 2, 3]  # 0 overlaps 1 (same class); 2 is another class
    assert nms(boxes, scores, labels, 0.99).tolist() == [1, 2, 3, 0]  # nothing overlaps that much: best first


def test_scenes_are_scaled_as_the_heatmap_stage_does_and_padded_up_to_a_window():
    from pipeline.predict.preprocess import resized, scaled

    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)
    assert resized(pixels, (40, 20)) is pixels  # the same size: untouched
    half = scaled(pixels, 0.5, (8, 8), (1, 2, 3))
    np.testing.assert_array_equal(half, np.asarray(Image.fromarray(pixels).resize((20, 10), Image.Resampling.BILINEAR)))
    padded = scaled(pixels, 0.5, (16, 12), (1, 2, 3))  # 20 x 10 after scaling: padded to 20 x 12, bottom and right
    assert padded.shape == (12, 20, 3)
    np.testing.assert_array_equal(padded[:10], half)
    assert (padded[10:] == [1, 2, 3]).all()
    wide = scaled(pixels, 1.0, (48, 16), (9, 9, 9))
    assert wide.shape == (20, 48, 3) and (wide[:, 40:] == 9).all() and np.array_equal(wide[:, :40], pixels)


def onnx_bundle(folder: Path) -> Path:
    """A real bundle folder with a hand-made ONNX classifier (mean colour -> apple for red, bee for
    blue), written with onnx's helpers: `predict main` end to end, in milliseconds."""
    from onnx import TensorProto, helper, save

    weights = helper.make_tensor("w", TensorProto.FLOAT, [3, 2], [4 / 255, -4 / 255, 0, 0, -4 / 255, 4 / 255])
    nodes = [helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    inputs = [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["n", 3, "h", "w"])]
    outputs = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", 2])]
    graph = helper.make_graph(nodes, "colours", inputs, outputs, [weights])
    folder.mkdir(parents=True)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    save(model, str(folder / "model.onnx"))
    spec = {"task": "classifier", "labels": LABELS, "input": "images", "preprocessing": IMAGE, "postprocessing": {},
            **FORMAT}
    (folder / "bundle.json").write_text(json.dumps(spec))
    return folder


def test_predict_main_loads_a_bundle_and_classifies(images, tmp_path, capsys):
    folder = onnx_bundle(tmp_path / "bundle")
    loaded = Bundle.load(folder, threads=1)
    assert loaded.task == "classifier" and loaded.labels == LABELS
    assert cli.main([str(folder), str(images), "--json", str(tmp_path / "p.json"), "--quiet", "--batch", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" is ")[1].split()[:2] for line in lines] == [["an", "apple"], ["a", "bee"], ["an", "apple"]]
    assert len(json.loads((tmp_path / "p.json").read_text())) == 3
    assert cli.main([str(tmp_path / "nothing"), str(images)]) == 1
    assert "nothing/bundle.json not found" in capsys.readouterr().err
    spec = json.loads((folder / "bundle.json").read_text())
    (folder / "bundle.json").write_text(json.dumps({**spec, "input": "pixels"}))
    with pytest.raises(ValueError, match="input 'pixels' is not the model's input"):
        Bundle.load(folder)
    with pytest.raises(SystemExit):
        cli.main([str(folder), str(images), "--batch", "0"])


def test_a_tiled_detector_bundle_without_its_tile_settings_is_refused(tmp_path):
    post = {"score_threshold": 0.5, "nms_iou": 0.5, "top_k": 100, "max_detections": 10,
            "vote_iou": 0.5, "vote_power": 2.0}
    spec = {"task": "detector", "labels": ["a"], "input": "images", "postprocessing": post, **FORMAT,
            "preprocessing": {"input_size": [8, 8], "resize": "tile", "pad_fill": 114}}
    with pytest.raises(ValueError, match=r"missing key 'preprocessing.tiles.overlap'"):
        check_spec(spec, tmp_path / "bundle.json")
    spec["preprocessing"]["tiles"] = {"overlap": 0.25}
    with pytest.raises(ValueError, match=r"missing key 'preprocessing.tiles.merge_ios'"):
        check_spec(spec, tmp_path / "bundle.json")
    spec["preprocessing"]["tiles"]["merge_ios"] = 0.5
    check_spec(spec, tmp_path / "bundle.json")


def test_bundle_json_that_does_not_describe_its_model_is_refused(tmp_path):
    """Labels against the model's classes, the task against its outputs, sizes, and the format
    and version that export records: each one line naming bundle.json, before any image is read."""
    folder = onnx_bundle(tmp_path / "bundle")
    spec = json.loads((folder / "bundle.json").read_text())
    post = {"score_threshold": 0.5, "nms_iou": 0.5, "top_k": 10, "max_detections": 5,
            "vote_iou": 0.5, "vote_power": 2.0}
    for edit, message in (({"labels": ["apple", "bee", "cat"]}, "3 labels for a model with 2 classes"),
                          ({"task": "detector", "postprocessing": post},
                           "outputs probabilities are not a detector's .scores, boxes.: bundle.json's 'task'"),
                          ({"preprocessing": {**IMAGE, "input_size": [0, 0]}},
                           r"preprocessing.input_size \[0, 0\] is not \[width, height\]"),
                          ({"format_version": FORMAT_VERSION + 1}, "this `predict` reads 'onnx' version .*: update"),
                          ({"format": "onnx-v9"}, "a bundle of format 'onnx-v9'.*re-export"),
                          ({"format_version": None}, "version None.*re-export")):
        (folder / "bundle.json").write_text(json.dumps({**spec, **edit}))
        with pytest.raises(ValueError, match=message):
            Bundle.load(folder)
        assert cli.main([str(folder), str(tmp_path), "--quiet"]) == 1  # one line, no traceback


def test_pictures_of_images_whose_names_meet_are_all_kept_and_odd_names_stay_on_one_line(tmp_path, capsys):
    write(tmp_path / "in", "a/photo.jpg", (255, 0, 0))
    write(tmp_path / "in", "b/photo.jpg", (0, 0, 255))
    write(tmp_path / "in", "photo.png", (0, 0, 255))
    write(tmp_path / "in", "new\nline.png", (255, 0, 0))
    inputs = [str(tmp_path / "in"), str(tmp_path / "in/photo.png")]  # one image twice
    assert cli.run(bundle("classifier"), inputs, None, tmp_path / "pics", 2, quiet=True) == 0
    assert len(list((tmp_path / "pics").iterdir())) == 5  # a picture per image given
    assert (tmp_path / "pics/new\nline_classes.png").is_file()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and lines[2].startswith('"new\\nline.png" is an apple')


def test_two_runs_writing_one_json_at_once_never_mix(tmp_path):
    first, second = cli.JsonStream(tmp_path / "p.json", "object"), cli.JsonStream(tmp_path / "p.json", "object")
    for i in range(3):
        first.add(i, f"first{i}")
        second.add(i, f"second{i}")
    first.close()
    second.close()
    assert json.loads((tmp_path / "p.json").read_text()) == {f"second{i}": i for i in range(3)}  # the last, whole
    assert list(tmp_path.glob(".*partial")) == []


def test_an_output_folder_that_cannot_be_written_is_one_line(images, tmp_path, capsys, monkeypatch):
    folder = onnx_bundle(tmp_path / "bundle")
    (tmp_path / "file").write_text("")
    assert cli.main([str(folder), str(images), "--out", str(tmp_path / "file/pics"), "--quiet"]) == 1
    assert "file/pics: Not a directory; give --out / --json a folder you can write to" in capsys.readouterr().err

    def refused(self, *args, **kwargs):  # what a read-only folder answers (the tests may run as root)
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refused)
    assert cli.main([str(folder), str(images), "--out", str(tmp_path / "locked/pics"), "--quiet"]) == 1
    assert "locked/pics: Permission denied; give --out / --json a folder you can write to" in capsys.readouterr().err


def test_a_quantized_task_without_its_int8_check_is_refused_when_defined():
    from pipeline.predict.bundled import Bundled

    with pytest.raises(TypeError, match="quantized but has no int8_quality, int8_compare"):
        type("Careless", (Bundled,), {})
    for task in TASKS.values():  # every registered task runs in `predict`, and is checked if quantized
        kind = task.step("bundled")
        assert isinstance(kind, Bundled)
        assert not kind.quantized or all(callable(getattr(kind, hook)) for hook in Bundled.INT8_HOOKS)
