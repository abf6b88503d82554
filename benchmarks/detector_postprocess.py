"""Benchmark: the detector's post-processing (NMS, box voting) on trained models, without training
again: each model of a `detector_raccoon.py` work folder scored on validation and test with each
post-processing variant.

    python benchmarks/detector_raccoon.py --data raccoon --seeds 42,43,44   # prints its work folder
    python benchmarks/detector_postprocess.py WORK_FOLDER [WORK_FOLDER ...] [--variant NAME KEY=VALUE ...] ...

A variant sets keys of `train.detector.postprocess` on top of what each model was trained with
(default variants: NMS alone, and box voting among the boxes overlapping by more than 0.5, 0.6
and 0.7 with weights score ** 1, 2 and 4). Prints every model, then a table per variant (per setting
and variant where the folders hold several settings) of mean ± sd over the models (seeds): validation
and test mAP@0.5, mAP@[.5:.95] and mAP@0.75. The split, the eval pipeline and the checkpoint are the
work folder's, so the variants differ in their post-processing alone; ``--checkpoint last.ckpt``
scores each training's last epoch instead of its best.ckpt. Several work folders of one dataset (runs
with other seeds) are pooled: their split is the project's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml
from seeds import print_table, spread

import pipeline  # noqa: F401  (offline environment defaults)
from pipeline.detect.data import DetectionData
from pipeline.detect.evaluate import predict
from pipeline.detect.metrics import detection_metrics
from pipeline.detect.settings import Postprocess
from pipeline.detect.train import load_detector

VARIANTS = [("nms", ["vote_iou=null"]),
            *((f"vote_{iou}_p{p}", [f"vote_iou={iou}", f"vote_power={p}"]) for iou, p in
              ((0.5, 4), (0.6, 1), (0.6, 2), (0.6, 4), (0.7, 4)))]
METRICS = ("map_50", "map", "map_75")
SPLITS = ("val", "test")


def variant_settings(trained: dict, assignments: list[str]) -> dict:
    """The model's post-processing with ``KEY=VALUE`` assignments (YAML values), validated."""
    settings = dict(trained)
    for assignment in assignments:
        key, _, value = assignment.partition("=")
        if key not in settings:
            raise SystemExit(f"--variant {assignment}: {key!r} is not a key of train.detector.postprocess "
                             f"({', '.join(settings)})")
        settings[key] = yaml.safe_load(value)
    return vars(Postprocess.of(settings))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path, nargs="+", help="detector_raccoon.py work folders of one dataset")
    parser.add_argument("--variant", nargs="+", action="append", metavar="NAME KEY=VALUE",
                        help="a named post-processing (default: NMS alone, and voting at several IoUs and powers)")
    parser.add_argument("--checkpoint", default="best.ckpt",
                        help="the checkpoint of each model folder scored (default best.ckpt; last.ckpt: the last "
                             "epoch's weights, their moving average where the training kept one)")
    args = parser.parse_args()
    variants = [(v[0], v[1:]) for v in args.variant] if args.variant else VARIANTS
    models = sorted((p for work in args.work for p in work.glob("detector_*") if p.is_dir()), key=lambda p: p.name)
    if not models:
        raise SystemExit(f"{' '.join(map(str, args.work))}: no trained detector_* folders "
                         "(run benchmarks/detector_raccoon.py first)")
    scores = {}  # {(setting, variant): [results per model]}
    for model in models:
        setting = model.name.removeprefix("detector_").rsplit("_", 1)[0]  # detector_<setting>_<seed>
        net, anchors, coder, info = load_detector(model, args.checkpoint)
        data = DetectionData(model.parent / "prepared/manifest.json", model.parent / f"augment_{setting}", 16, 0, 0)
        splits = [s for s in SPLITS if data.samples.get(s)]
        for name, assignments in variants:
            scored = {**info, "postprocess": variant_settings(info["postprocess"], assignments)}
            result = {}
            for split in splits:
                preds, targets, _ = predict(net, anchors, coder, scored, data, split)
                result[split] = detection_metrics(preds, targets, info["classes"])
            scores.setdefault((setting, name), []).append(result)
            print(f"{model.name} {name}: " + "; ".join(
                f"{s} " + ", ".join(f"{k} {result[s][k]:.4f}" for k in METRICS) for s in splits), flush=True)
    splits = list(next(iter(scores.values()))[0])
    settings = sorted({setting for setting, _ in scores})
    shown = lambda setting, name: f"{setting}, {name}" if len(settings) > 1 else name  # noqa: E731
    counts = {len(results) for results in scores.values()}
    models_shown = f"{max(counts)} models, mean ± sd" if max(counts) > 1 else "1 model"
    print_table([f"{models[0].parent.name.split('-')[0]}: {args.checkpoint}, post-processing ({models_shown})",
                 *(f"{s} {k}" for s in splits for k in METRICS)],
                [[shown(setting, name), *(spread([r[s][k] for r in results], 4) for s in splits for k in METRICS)]
                 for (setting, name), results in scores.items()])


if __name__ == "__main__":
    main()
