"""The detector's bundle: scores and decoded boxes from one graph (anchors and box coding baked
in; NMS stays outside, in `predict`'s numpy), and the parity of its detections."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn

from pipeline.data.manifest import Manifest
from pipeline.detect.parity import compare as compare_detections
from pipeline.detect.parity import failures as detection_failures
from pipeline.detect.views import scores_and_boxes, twin_order
from pipeline.models.exportable import SAMPLES, Exportable, val_pixels
from pipeline.predict.preprocess import fit_batch, network_batch
from pipeline.tasks import TASKS


class DetectorGraph(nn.Module):
    """Images -> sigmoid scores B x A x K and decoded boxes B x A x 4 (xyxy, fractions of the input),
    averaged with the mirror image's where the model's post-processing flips (pipeline/detect/views.py)."""

    outputs = TASKS["detector"].outputs

    def __init__(self, net: nn.Module, anchors: torch.Tensor, coder, input_size: tuple[int, int], flip: bool):
        super().__init__()
        self.net, self.coder = net, coder
        self.register_buffer("anchors", anchors.clone())
        self.register_buffer("twins", twin_order(net.grids, net.per_cell) if flip else None)
        width, height = input_size
        self.register_buffer("scale", torch.tensor([width, height, width, height], dtype=torch.float32))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores, boxes = scores_and_boxes(self.net, images, self.anchors, self.coder, self.twins)
        return scores, boxes / self.scale


@torch.no_grad()
def detection_parity(ex: Exportable, session) -> tuple[str, dict, list[str]]:
    """Torchvision post-processing of eager PyTorch's outputs vs `predict`'s numpy post-processing of
    onnxruntime's, on every example batch, compared as pipeline.detect.parity says."""
    from pipeline.detect.postprocess import select
    from pipeline.predict.postprocess import detections as numpy_detections
    from pipeline.predict.postprocess import settings

    graph, post = ex.graph, settings(ex.spec["postprocessing"])
    size = tuple(ex.spec["preprocessing"]["input_size"])
    reference, candidate, raw_reference, raw_candidate = [], [], [], []
    pixels = torch.tensor([size[0], size[1], size[0], size[1]], dtype=torch.float32)
    for x in ex.inputs:  # the model's own path, not the graph's forward, which is what is checked
        scores, boxes = scores_and_boxes(graph.net, torch.from_numpy(x), graph.anchors, graph.coder, graph.twins)
        reference += [{k: v.numpy() for k, v in found.items()} for found in select(scores, boxes, size, **post)]
        raw_reference += [{"boxes": b.numpy(), "scores": s.numpy()} for s, b in zip(scores, boxes)]
        scores, boxes = session.run(None, {"images": x})
        candidate += [numpy_detections(s, b, size, **post) for s, b in zip(scores, boxes)]
        raw_candidate += [{"boxes": b * pixels.numpy(), "scores": s} for s, b in zip(scores, boxes)]
    report = compare_detections(reference, candidate, post["score_threshold"], post["max_detections"],
                                (raw_reference, raw_candidate))
    return "detections", report, detection_failures(report)


def load_detector_export(cfg: DictConfig, model_dir: Path, manifest: Manifest,
                         metrics: dict | None) -> Exportable:
    from pipeline.detect.train import load_detector

    net, anchors, coder, info = load_detector(model_dir)
    aug = cfg.augment.detector
    size = tuple(info["input_size"])
    pre = {"input_size": list(size), "resize": str(aug.resize), "pad_fill": int(aug.pad_fill),
           "mean": net.mean.flatten().div(255).tolist(), "std": net.std.flatten().div(255).tolist(),
           "normalised_in_graph": True}
    if info["tiles"]:  # sliced inference: the tile settings the model was trained and evaluated with
        pre.update(resize="tile", pad_fill=int(info["tiles"]["pad_fill"]),
                   tiles={k: info["tiles"][k] for k in ("overlap", "merge_ios")})
    post = {**info["postprocess"], "anchors": len(anchors), "anchor_spec": info["model"]["anchors"],
            "grids": [list(g) for g in net.grids], "box_format": "xyxy fractions of the input (decoded in the graph)"}
    images = val_pixels(manifest, "val", SAMPLES)
    spec = {"task": "detector", "labels": info["classes"], "preprocessing": pre, "postprocessing": post,
            "model": info["model"]}
    example = network_batch(images[0], pre)[:SAMPLES] if info["tiles"] else fit_batch(images, pre)[0]
    graph = DetectorGraph(net, anchors, coder, size, info["postprocess"]["flip"]).eval()
    return Exportable(graph, spec, [example], images, parity=detection_parity)
