"""`predict`'s numbers against the model's: its resize against the pipeline's eval transform, its
mapping of boxes and heatmap cells back to the image against geometry worked out by hand, and its
outputs on real bundles against the PyTorch model on the same images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.augment.build import load_pipeline, resize_transforms
from pipeline.detect.bundled import detect
from pipeline.heatmap.bundled import heatmaps
from pipeline.predict.bundle import Bundle
from pipeline.predict.bundled import probabilities
from pipeline.predict.preprocess import fit


class FixedSession:
    """An ONNX Runtime session stand-in: returns ``outputs(input)`` and keeps each input it got."""

    def __init__(self, outputs):
        self.outputs, self.inputs = outputs, []

    def run(self, names, feeds):
        self.inputs.append(feeds["images"])
        return self.outputs(feeds["images"])


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("mode", ["letterbox", "stretch"])
@pytest.mark.parametrize("shape, size", [((417, 650), (160, 160)), ((495, 450), (160, 120)), ((37, 250), (64, 64)),
                                         ((60, 80), (160, 160))])
def test_predict_resizes_as_the_pipelines_eval_transform_does(mode, shape, size):
    """The eval transform that evaluation and training use (albumentations) and predict's own resize
    agree within one grey level on noise (the hardest case for interpolation), shrinking and
    enlarging, with the padding in the same place; and the full image box lands on the same spot."""
    import albumentations as A

    pixels = noise(*shape)
    pipeline = A.Compose(resize_transforms(size, mode, 114), bbox_params=A.BboxParams("pascal_voc", ["labels"]))
    expected = pipeline(image=pixels, bboxes=[[0, 0, shape[1], shape[0]]], labels=[0])
    got, placement = fit(pixels, size, mode, 114)
    assert got.shape == expected["image"].shape == (size[1], size[0], 3)
    assert np.abs(got.astype(int) - expected["image"].astype(int)).max() <= 1
    assert np.array_equal((got == 114).all(-1) & (expected["image"] == 114).all(-1), (expected["image"] == 114).all(-1))
    # where predict says the image landed (input = image * scale + offset) is where the pipeline put it
    full = np.array([[0, 0, shape[1], shape[0]]], np.float32)
    landed = full * np.array(placement.scale * 2) + np.array(placement.offset * 2)
    np.testing.assert_allclose(landed[0], expected["bboxes"][0], atol=1e-3)


def detector_bundle(resize: str, outputs) -> Bundle:
    spec = {"task": "detector", "labels": ["a"], "input": "images",
            "preprocessing": {"input_size": [160, 160], "resize": resize, "pad_fill": 114},
            "postprocessing": {"score_threshold": 0.5, "nms_iou": 0.5, "top_k": 100, "max_detections": 10,
                               "vote_iou": 0.5, "vote_power": 2.0}}
    return Bundle(Path("."), spec, FixedSession(outputs))


@pytest.mark.parametrize("resize, expected", [("letterbox", [80, 80, 160, 160]), ("stretch", [80, 90, 160, 150])])
def test_detect_maps_boxes_from_the_input_back_to_the_image(resize, expected):
    """A 320 x 240 image; the network finds one box at input pixels (40, 60, 80, 100) of 160 x 160.
    Letterbox: scale 1/2, 20 rows of padding above; stretch: x scale 1/2, y scale 2/3."""
    scores = np.array([[[0.9], [0.2]]], np.float32)  # the second anchor is under the threshold
    boxes = np.array([[[40, 60, 80, 100], [0, 0, 10, 10]]], np.float32) / 160
    bundle = detector_bundle(resize, lambda x: [scores, boxes])
    found = detect(bundle, [np.full((240, 320, 3), 7, np.uint8)])[0]
    np.testing.assert_allclose(found["boxes"], [expected], atol=1e-3)
    assert found["scores"].tolist() == pytest.approx([0.9]) and found["labels"].tolist() == [0]
    fed = bundle.session.inputs[0][0]  # 3 x 160 x 160, what the network saw
    if resize == "letterbox":
        assert (fed[:, :20] == 114).all() and (fed[:, 140:] == 114).all() and (fed[:, 20:140] == 7).all()
    else:
        assert (fed == 7).all()


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_a_heatmap_cell_is_painted_around_its_windows_centre(scale):
    """One hot cell (row 3, column 5) of a 32 x 24 px window network with stride 8: its window's
    corner is (40, 24) in the scaled image, its centre (56, 36), which is (56, 36) / scale in the image."""
    window, stride = (32, 24), 8

    def cells(x):
        h, w = x.shape[2:]
        probs = np.zeros((1, 2, (h - window[1]) // stride + 1, (w - window[0]) // stride + 1), np.float32)
        probs[0, 1] = 1.0
        probs[0, 0, 3, 5], probs[0, 1, 3, 5] = 1.0, 0.0
        return [probs]

    spec = {"task": "fcn", "labels": ["whale", "background"], "input": "images",
            "preprocessing": {"window": list(window), "stride": stride, "scales": [scale], "mean": [0.5] * 3},
            "postprocessing": {"background": "background"}}
    height, width = round(96 / scale), round(128 / scale)
    maps = heatmaps(Bundle(Path("."), spec, FixedSession(cells)), noise(height, width))
    assert maps.shape == (2, height, width)
    y, x = np.unravel_index(np.argmax(maps[0]), maps[0].shape)
    assert abs(x - 56 / scale) <= 2 / scale and abs(y - 36 / scale) <= 2 / scale, (x, y)


def scenes(tiny_data: Path, count: int = 4) -> list[np.ndarray]:
    from pipeline.io.images import read_image

    return [read_image(p).pixels for p in sorted((tiny_data / "prepared").rglob("*.png"))[:count]]


@torch.no_grad()
def test_predict_gives_the_classifiers_probabilities(bundles, tiny_data):
    """Images through the pipeline's eval transform into the PyTorch network, against the same
    images through `predict` (its own resize, ONNX Runtime)."""
    from pipeline.classify.evaluate import load_classifier
    from pipeline.classify.export import ClassifierGraph

    net, info = load_classifier(bundles / "models/classifier")
    transform = load_pipeline(tiny_data / "augment/classifier_eval.json")
    images = scenes(tiny_data)
    inputs = torch.stack([torch.from_numpy(transform(image=px)["image"]).permute(2, 0, 1) for px in images])
    expected = ClassifierGraph(net)(inputs.float()).numpy()
    got = probabilities(Bundle.load(bundles / "classifier"), images)
    assert got.shape == expected.shape == (len(images), len(info["classes"]))
    assert np.abs(got - expected).max() < 2e-3  # a grey level of resize rounding at most, not more


@torch.no_grad()
def test_predict_gives_the_detectors_boxes_in_image_pixels(bundles, tiny_data):
    """A 160 x 120 image (a letterboxed scene without its first 20 rows and last 20) needs no resize:
    the pipeline and predict both pad it back to 160 x 160 with 20 rows above. PyTorch's detections
    on that input, moved up by those 20 rows, are predict's, box for box within a pixel."""
    from pipeline.detect.parity import compare
    from pipeline.detect.train import load_detector
    from pipeline.detect.views import Detector

    net, anchors, coder, info = load_detector(bundles / "models/detector")
    assert tuple(info["input_size"]) == (160, 160)
    transform = load_pipeline(tiny_data / "augment/detector_eval.json")
    crops = [transform(image=px, bboxes=[], labels=[])["image"][20:140] for px in scenes(tiny_data)]
    inputs = [transform(image=crop, bboxes=[], labels=[])["image"] for crop in crops]
    assert all((x[:20] == 114).all() and np.array_equal(x[20:140], c) for x, c in zip(inputs, crops))
    batch = torch.stack([torch.from_numpy(x).permute(2, 0, 1) for x in inputs]).float()
    reference = []
    for found in Detector(net, anchors, coder, info)(batch):
        boxes = found["boxes"].numpy() - np.array([0, 20, 0, 20], np.float32)
        reference.append({"boxes": np.clip(boxes, 0, [160, 120, 160, 120]), "scores": found["scores"].numpy(),
                          "labels": found["labels"].numpy()})
    got = detect(Bundle.load(bundles / "detector"), crops)
    report = compare(reference, got, info["postprocess"]["score_threshold"], info["postprocess"]["max_detections"])
    assert report["detections"] > 0 and report["unmatched"] == 0, report
    assert report["matched"] >= report["detections"] - report["unmatched_near_boundary"]
    assert report["box_max_abs_diff_px"] < 1 and report["score_max_abs_diff"] < 1e-4, report


@torch.no_grad()
def test_predicts_heatmap_peaks_where_the_pytorch_fcn_puts_them(bundles, tiny_data):
    """predict's heatmap peaks at the centre of the window (within a stride) of a cell where the
    PyTorch FCN's probability is highest. Highest up to 1e-3: the test session's FCN is barely trained,
    and cells far apart can tie on its nearly flat maps."""
    from pipeline.heatmap.train import load_fcn

    fcn, info = load_fcn(bundles / "models/fcn")
    bundle = Bundle.load(bundles / "fcn")
    assert bundle.spec["preprocessing"]["scales"], "a bundle scans at least one scale"
    bundle.spec["preprocessing"]["scales"] = [1.0]
    window, stride = bundle.spec["preprocessing"]["window"], int(bundle.spec["preprocessing"]["stride"])
    checked = 0
    for pixels in scenes(tiny_data, 3):
        pixels = np.asarray(Image.fromarray(pixels).resize((window[0] * 3, window[1] * 2)))
        probs = torch.softmax(fcn.cells(torch.from_numpy(pixels).permute(2, 0, 1)[None].float()), 1)[0].numpy()
        maps = heatmaps(bundle, pixels)
        for k, label in enumerate(bundle.labels):
            if label == bundle.spec["postprocessing"]["background"]:
                continue
            y, x = np.unravel_index(np.argmax(maps[k]), maps[k].shape)
            rows, cols = probs[k].shape
            centres = [(i, j, j * stride + window[0] / 2, i * stride + window[1] / 2)
                       for i in range(rows) for j in range(cols)]
            near = [probs[k][i, j] for i, j, cx, cy in centres if abs(x - cx) <= stride and abs(y - cy) <= stride]
            assert near and max(near) >= probs[k].max() - 1e-3, (label, (x, y), probs[k].max(), near)
            # cells are painted by bilinear upsampling: the peak is the cell's value, blended a little
            assert probs[k].max() - 0.1 <= maps[k].max() <= probs[k].max() + 1e-4
            checked += 1
    assert checked >= 3
