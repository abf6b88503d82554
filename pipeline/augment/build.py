"""Build albumentations pipelines from config, and save / load them in albumentations' format.

A pipeline config (conf/augment/<task>/*.yaml) is::

    input_size: [160, 160]   # width, height the model sees
    resize: letterbox        # letterbox | stretch | none (any size passes through: heatmaps) | tile
    pad_fill: 114            # grey used by letterbox padding
    boxes: {format: pascal_voc, min_visibility: 0.3, min_area: 16, clip: true}   # or null
    train:                   # ordered; each entry is one albumentations transform, or null to drop it
      hflip: {_target_: albumentations.HorizontalFlip, p: 0.5}
      ...

The train pipeline is ``train`` transforms followed by the resize; the eval pipeline is the
resize alone, so both see images of the same size and scale.

``resize: tile`` (large images with small objects, detector only) keeps every image at its own
scale: training cuts an ``input_size`` crop first (around a random object for a share
``tiles.object_share`` of the crops, anywhere for the rest; boxes clipped and filtered by the
``boxes`` policy), then applies the ``train`` transforms to the tile; the eval pipeline passes the
whole image, which evaluation and `predict` cut into overlapping tiles (pipeline/predict/tiles.py).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Mapping

import albumentations as A
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from pipeline.io.atomic import atomic_dir, atomic_write_json

RESIZE_MODES = ("letterbox", "stretch", "none", "tile")
TILES_FILE = "{task}_tiles.json"  # a tiled task's tile settings, saved next to its pipelines
LABEL_FIELD = "labels"


def as_dict(cfg: Mapping | DictConfig | None) -> dict:
    if cfg is None:
        return {}
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return dict(cfg)


def resize_transforms(input_size, mode: str, pad_fill: float = 114) -> list[A.BasicTransform]:
    """The final step that brings every image to the model input (``input_size`` = width, height)."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"augment resize: {mode!r} is not one of {RESIZE_MODES}")
    if mode in ("none", "tile"):
        return []
    width, height = (int(v) for v in input_size)
    if mode == "stretch":
        return [A.Resize(height=height, width=width)]
    return [
        A.LongestMaxSize(max_size_hw=(height, width)),
        A.PadIfNeeded(min_height=height, min_width=width, position="center",
                      border_mode=0, fill=pad_fill, fill_mask=0),
    ]


def bbox_params(policy: Mapping | None) -> A.BboxParams | None:
    """Box handling policy: format, and which boxes survive (min visibility/area/size), clipping."""
    if not policy:
        return None
    policy = as_dict(policy)
    return A.BboxParams(
        format=policy["format"],
        label_fields=[LABEL_FIELD],
        min_visibility=float(policy["min_visibility"]),
        min_area=float(policy["min_area"]),
        min_width=float(policy["min_width"]),
        min_height=float(policy["min_height"]),
        clip=bool(policy["clip"]),
        filter_invalid_bboxes=True,
    )


def build_transform(name: str, spec: Mapping) -> A.BasicTransform | A.BaseCompose:
    if "_target_" not in spec:
        raise ValueError(f"augment transform {name!r}: needs a _target_ such as albumentations.HorizontalFlip")
    transform = instantiate(spec, _convert_="all")
    if not isinstance(transform, (A.BasicTransform, A.BaseCompose)):
        raise ValueError(f"augment transform {name!r}: {spec['_target_']} is not an albumentations transform "
                         "(only those can be saved with the pipeline)")
    return transform


def tile_crop(input_size, pad_fill: float, object_share: float) -> list[A.BasicTransform]:
    """An ``input_size`` crop at the image's own scale: around a random box for ``object_share``
    of the crops, anywhere for the rest (background, mostly); small images are padded first."""
    if not 0 <= object_share <= 1:
        raise ValueError(f"augment tiles.object_share: {object_share} is not in [0, 1]")
    width, height = (int(v) for v in input_size)
    crops = [A.AtLeastOneBBoxRandomCrop(height=height, width=width, p=object_share),
             A.RandomCrop(height=height, width=width, p=1 - object_share)]
    return [A.PadIfNeeded(min_height=height, min_width=width, position="top_left", border_mode=0, fill=pad_fill),
            A.OneOf([c for c in crops if c.p > 0], p=1)]


def build_pipeline(cfg: Mapping | DictConfig, train: bool, seed: int | None = None) -> A.Compose:
    """The train (``train=True``) or eval pipeline described by ``cfg``."""
    cfg = as_dict(cfg)
    if isinstance(cfg["input_size"], str):  # `auto`: chosen from the data by the augment stage
        raise ValueError(f"augment input_size: {cfg['input_size']!r} is not [width, height]; `auto` is resolved "
                         "from the data by the augment stage (pipeline/augment/input_size.py)")
    steps = []
    tiled = cfg["resize"] == "tile"
    if tiled and not cfg.get("tiles"):
        raise ValueError("augment resize: tile needs a tiles: {overlap, object_share, merge_ios} entry "
                         "(conf/augment/detector/tiles.yaml)")
    if train:
        if tiled:
            steps = tile_crop(cfg["input_size"], cfg["pad_fill"], float(cfg["tiles"]["object_share"]))
        steps += [build_transform(name, spec) for name, spec in cfg["train"].items() if spec]
        if tiled:  # a train transform that changed the size (a crop) is brought back to the tile's
            steps.append(A.Resize(height=int(cfg["input_size"][1]), width=int(cfg["input_size"][0])))
    steps += resize_transforms(cfg["input_size"], cfg["resize"], cfg["pad_fill"])
    with warnings.catch_warnings():  # a tiled eval pipeline has no step; its box processor still checks the boxes
        warnings.filterwarnings("ignore", message="Got processor for bboxes, but no transform to process it")
        return A.Compose(steps, bbox_params=bbox_params(cfg["boxes"]), seed=seed)


def save_pipeline(pipeline: A.Compose, path: str | Path) -> None:
    """Write ``pipeline`` in albumentations' own JSON format, atomically."""
    atomic_write_json(path, A.to_dict(pipeline))


def load_pipeline(path: str | Path) -> A.Compose:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no augmentation pipeline here; run the augment stage (dvc repro augment)")
    with warnings.catch_warnings():
        # albumentations 2.0.8 saves PadIfNeeded's derived `padding`, then warns on loading it.
        warnings.filterwarnings("ignore", message=r"Argument\(s\) 'padding' are not valid for transform PadIfNeeded")
        warnings.filterwarnings("ignore", message="Got processor for bboxes, but no transform to process it")
        return A.load(str(path), data_format="json")


def write_pipelines(cfg: Mapping | DictConfig, out_dir: str | Path, seed: int) -> dict[str, Path]:
    """Save the train and eval pipelines of every task in ``cfg`` (augment.<task>) to ``out_dir``."""
    written: dict[str, Path] = {}
    with atomic_dir(out_dir) as tmp:
        for task, task_cfg in as_dict(cfg).items():
            for mode in ("train", "eval"):
                name = f"{task}_{mode}.json"
                save_pipeline(build_pipeline(task_cfg, train=mode == "train", seed=seed), tmp / name)
                written[f"{task}_{mode}"] = Path(out_dir) / name
            if task_cfg["resize"] == "tile":
                tiles = {"input_size": list(task_cfg["input_size"]), "pad_fill": task_cfg["pad_fill"],
                         "boxes": task_cfg["boxes"], **task_cfg["tiles"]}
                atomic_write_json(tmp / TILES_FILE.format(task=task), tiles)
                written[f"{task}_tiles"] = Path(out_dir) / TILES_FILE.format(task=task)
    return written


def load_tiles(pipelines_dir: str | Path, task: str) -> dict | None:
    """A tiled task's tile settings (input_size, pad_fill, boxes policy, overlap, object_share,
    merge_ios), or None."""
    path = Path(pipelines_dir) / TILES_FILE.format(task=task)
    return json.loads(path.read_text()) if path.is_file() else None


def describe(pipeline: A.Compose) -> list[str]:
    return [type(t).__name__ for t in pipeline.transforms]
