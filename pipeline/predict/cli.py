"""`predict`: run an exported bundle on images or folders, with onnxruntime, numpy and Pillow only.

    predict bundles/classifier images/          # one line per image: "a.jpg is a dolphin dolphin=99.968% ..."
    predict bundles/detector images/ --json detections.json --out pictures/   # COCO results + boxes
    predict bundles/fcn scenes/ --out heatmaps/                              # heatmap overlays

Folders are searched recursively and streamed in batches (memory does not grow with the folder);
progress goes to stderr. An unreadable image is reported and skipped; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from pipeline.io.images import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageError, is_image_file, read_image
from pipeline.predict.bundle import Bundle


def image_paths(inputs: Iterable[str]) -> Iterator[Path]:
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and is_image_file(p))
        elif path.is_file():
            yield path
        else:
            raise FileNotFoundError(f"{path}: no such image or folder")


def shown(path: Path) -> str:
    """A file's name for a line of output: as it is, or quoted with escapes when it holds a line
    break or another control character (one line per image, whatever the names)."""
    name = path.name
    return json.dumps(name, ensure_ascii=False) if any(not c.isprintable() for c in name) else name


class PictureNames:
    """The picture of each image, ``<stem>_<kind>.png`` in the output folder; images whose stems meet
    (``a/photo.jpg``, ``b/photo.jpg``, ``photo.png``) are named after their whole path instead
    (``a_photo.jpg_boxes.png``), so no picture overwrites another."""

    def __init__(self, paths: Iterable[Path]):
        self.stems = Counter(p.stem for p in paths)
        self.used: set[str] = set()

    def __call__(self, path: Path, kind: str) -> str:
        base = path.stem if self.stems[path.stem] == 1 else "_".join(p for p in path.parts if p not in ("/", ".."))
        name, n = f"{base}_{kind}.png", 1
        while name in self.used:  # the same file given twice
            n += 1
            name = f"{base}_{n}_{kind}.png"
        self.used.add(name)
        return name


class JsonStream:
    """A JSON object ({...}) or list ([...]) written entry by entry, so memory stays bounded. It is
    written beside ``path`` and takes its name only when the run ends well (:meth:`close`): a failed
    run leaves no file that looks like a finished result."""

    def __init__(self, path: str | Path | None, kind: str):
        self.path = Path(path) if path else None
        self.file = None
        if self.path:  # a name of its own: two runs writing one path at once never mix their entries
            self.file = tempfile.NamedTemporaryFile("w", dir=self.path.parent, prefix=f".{self.path.name}.",
                                                    suffix=".partial", delete=False)
            self.partial = Path(self.file.name)
        self.close_mark, self.first = ("}" if kind == "object" else "]"), True
        if self.file:
            self.file.write("{" if kind == "object" else "[")

    def add(self, value, key: str | None = None) -> None:
        if not self.file:
            return
        self.file.write(("\n" if self.first else ",\n") + (f"{json.dumps(key)}: " if key is not None else "")
                        + json.dumps(value))
        self.first = False

    def close(self) -> None:
        if self.file:
            self.file.write(f"\n{self.close_mark}\n")
            self.file.close()
            os.replace(self.partial, self.path)

    def discard(self) -> None:
        if self.file:
            self.file.close()
            self.partial.unlink(missing_ok=True)


class Progress:
    def __init__(self, total: int, quiet: bool):
        self.total, self.done, self.quiet = total, 0, quiet
        self.start = self.last = time.perf_counter()
        self.shown = -1

    def advance(self, done: int, final: bool = False) -> None:
        self.done = done
        now = time.perf_counter()
        if not self.quiet and (now - self.last > 2 or final) and self.done != self.shown:
            rate = self.done / max(now - self.start, 1e-9)
            print(f"predict: {self.done}/{self.total} images, {rate:.1f} img/s", file=sys.stderr, flush=True)
            self.last, self.shown = now, self.done


def batches(paths: Iterable[Path], size: int, failed: list,
            max_pixels: int = DEFAULT_MAX_PIXELS) -> Iterator[list[tuple[Path, np.ndarray]]]:
    """Decoded images, ``size`` at a time; unreadable files are reported and counted in ``failed``."""
    current = []
    for path in paths:
        try:
            current.append((path, read_image(path, max_pixels).pixels))
        except ImageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed.append(str(path))
        if len(current) == size:
            yield current
            current = []
    if current:
        yield current


def run(bundle: Bundle, inputs: list[str], json_path, out_dir, batch_size: int, quiet: bool,
        max_pixels: int = DEFAULT_MAX_PIXELS) -> int:
    names = PictureNames(image_paths(inputs))  # one walk: the total for progress, stems for picture names
    total = sum(names.stems.values())
    if not total:
        raise FileNotFoundError(f"{' '.join(inputs)}: no image files found "
                                f"(looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
    progress, failed = Progress(total, quiet), []
    out = Path(out_dir) if out_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    kind = bundle.kind
    stream = JsonStream(json_path, kind.json_layout)
    done = 0
    try:
        for group in batches(image_paths(inputs), 1 if kind.per_image else batch_size, failed, max_pixels):
            for (path, px), result in zip(group, kind.infer(bundle, [px for _, px in group])):
                print(kind.line(shown(path), result, bundle), flush=True)
                for value, key in kind.records(str(path), result, bundle, done + 1):
                    stream.add(value, key)
                if out:
                    kind.draw(px, result, bundle).save(out / names(path, kind.picture))
                done += 1
            progress.advance(done + len(failed))
    except BaseException:
        stream.discard()
        raise
    stream.close()
    progress.advance(done + len(failed), final=True)
    if failed:
        print(f"predict: {len(failed)} of {total} images could not be read (listed above)", file=sys.stderr)
    return 1 if failed else 0


def at_least(low: int):
    """An argparse type: an integer >= ``low`` (``--batch 0`` is an error, not batch 1)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below {low}")
        return value

    return parse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", help="a bundle folder written by `export` (bundles/<model>)")
    parser.add_argument("inputs", nargs="+", help="image files or folders (searched recursively)")
    parser.add_argument("--json", help="classifier: {image: {class: p}}; multilabel: {image: {class above its "
                        "threshold: p}}; detector: COCO results; fcn: peaks")
    parser.add_argument("--out", help="folder for pictures (classes with probabilities, detector boxes, fcn heatmap "
                                      "overlays)")
    parser.add_argument("--batch", type=at_least(1), default=16, help="images per ONNX Runtime call")
    parser.add_argument("--threads", type=at_least(0), default=0, help="onnxruntime threads (0: its default)")
    parser.add_argument("--int8", action="store_true", help="run the bundle's int8 model (export.int8.enabled)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument("--max-pixels", type=at_least(1), default=DEFAULT_MAX_PIXELS,
                        help="larger images are refused as possible decompression bombs")
    args = parser.parse_args(argv)
    try:
        bundle = Bundle.load(args.bundle, args.threads, args.int8)
        return run(bundle, args.inputs, args.json, args.out, args.batch, args.quiet, args.max_pixels)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # --out or --json where this user cannot write, or under a file
        print(f"error: {exc.filename}: {exc.strerror}; give --out / --json a folder you can write to",
              file=sys.stderr)
        return 1


def entry() -> None:
    sys.exit(main())
