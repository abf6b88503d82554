"""The detector's parts learn together: a few synthetic images are memorised to mAP@0.5 >= 0.95."""

from __future__ import annotations

import numpy as np
import torch
from omegaconf import OmegaConf

from pipeline.data.sources import synthetic
from pipeline.detect.anchors import AnchorSpec, linear_sizes, make_anchors
from pipeline.detect.coding import BoxCoder
from pipeline.detect.loss import DetectionLoss
from pipeline.detect.metrics import detection_metrics
from pipeline.detect.model import SSD
from pipeline.detect.postprocess import detections
from tests.helpers import detector_model, detector_training

SIZE = (128, 128)


def few_images(n: int = 4):
    cfg = OmegaConf.create({"seed": 7, "image_size": list(SIZE), "scale": [0.2, 0.5],
                            "backgrounds": ["grass", "gravel"], "classes": None,
                            "num_images": n, "objects_per_image": [1, 3], "num_scenes": 0, "scene_size": [8, 8],
                            "objects_per_scene": [1, 1], "aspect": [0.7, 1.4], "max_overlap": 0.1})
    records, classes = synthetic.read(cfg)
    images = torch.stack([torch.from_numpy(np.ascontiguousarray(r.pixels.transpose(2, 0, 1))) for r in records])
    boxes = [torch.tensor(r.boxes, dtype=torch.float32) for r in records]
    labels = [torch.tensor([classes.index(c) for c in r.box_classes]) for r in records]
    return images, boxes, labels, classes


def test_a_few_images_are_memorised(tmp_path):
    torch.manual_seed(0)
    images, boxes, labels, classes = few_images()
    model = SSD(len(classes), 6, SIZE, detector_model(backbone="scratch", pretrained="none", width=16,
                                                      extra_channels=128, prior=0.01, neck="none", head_depth=0,
                                                      anchors={"levels": [1, 2, 3, 4, 5]}))
    spec = AnchorSpec(zooms=(1.0, 1.4), ratios=(1.0, 2.0, 0.5), sizes=linear_sizes(5, 0.15, 0.9))
    anchors, coder = make_anchors(model.grids, spec, SIZE), BoxCoder()
    settings = detector_training(loss={"alpha": 0.25, "gamma": 2.0, "localisation": "smooth_l1", "box_weight": 1.0},
                                 matching={"positive_iou": 0.5, "negative_iou": 0.4})
    loss_fn = DetectionLoss(anchors, len(classes), coder, settings.loss, settings.matching)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for _ in range(200):
        loss = loss_fn(*model(images), boxes, labels)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        found = detections(*model(images), anchors, coder, SIZE, score_threshold=0.05, nms_iou=0.5, top_k=1000,
                           max_detections=100, vote_iou=0.5, vote_power=2.0)
    result = detection_metrics(found, [{"boxes": b, "labels": lab} for b, lab in zip(boxes, labels)], classes)
    assert result["map_50"] >= 0.95, result
