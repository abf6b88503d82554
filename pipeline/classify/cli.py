"""`classify`: the class of every image in a folder (or of the given images), one line each::

    dolphin1.jpg is a dolphin dolphin=99.968% seahorse=0.032%

    classify images/                       # uses models/classifier (best.ckpt)
    classify a.jpg b.png --model models/classifier --json predictions.json
    classify images/ --out pictures/       # each image with its top classes and probabilities
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from pipeline.augment.apply import Example, augment, image_tensor
from pipeline.augment.build import load_pipeline
from pipeline.classify.bundled import format_line
from pipeline.classify.evaluate import load_classifier
from pipeline.devices import accelerator_device
from pipeline.io.atomic import atomic_write_json
from pipeline.io.images import ImageError, read_image
from pipeline.predict.cli import PictureNames, image_paths, shown
from pipeline.predict.draw import classes_picture
from pipeline.training import PREPROCESS_FILE


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="classify", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", help="image files or folders (searched recursively)")
    parser.add_argument("--model", default="models/classifier", help="folder written by train@classifier")
    parser.add_argument("--checkpoint", default="best.ckpt")
    parser.add_argument("--json", help="also write {image: {class: probability}} to this file")
    parser.add_argument("--out", help="folder for pictures: each image with its top classes and probabilities")
    args = parser.parse_args(argv)
    try:
        net, info = load_classifier(args.model, args.checkpoint)
        device = accelerator_device("auto")  # a GPU where there is one
        net.to(device)
        preprocess = load_pipeline(Path(args.model) / PREPROCESS_FILE)
        paths = list(image_paths(args.inputs))
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    classes, results, failed, names = info["classes"], {}, 0, PictureNames(paths)
    with torch.no_grad():
        for path in paths:
            try:
                pixels = read_image(path).pixels
            except ImageError as exc:
                print(f"error: {exc}", file=sys.stderr)
                failed += 1
                continue
            image = augment(preprocess, Example(pixels)).image
            probs = torch.softmax(net(image_tensor(image)[None].to(device)).float(), dim=1)[0].cpu().numpy()
            print(format_line(shown(path), probs, classes), flush=True)
            results[str(path)] = {c: float(p) for c, p in zip(classes, probs)}
            if args.out:
                Path(args.out).mkdir(parents=True, exist_ok=True)
                classes_picture(pixels, probs, classes).save(Path(args.out) / names(path, "classes"))
    if args.json:
        atomic_write_json(args.json, results)
    return 1 if failed else 0


def entry() -> None:
    sys.exit(main())
