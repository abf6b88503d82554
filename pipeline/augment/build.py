"""Build albumentations pipelines from config, and save / load them in albumentations' format.

A pipeline config (conf/augment/<task>/*.yaml) is::

    input_size: [160, 160]   # width, height the model sees
    resize: letterbox        # letterbox | stretch | none (any size passes through: heatmaps)
    pad_fill: 114            # grey used by letterbox padding
    boxes: {format: pascal_voc, min_visibility: 0.3, min_area: 16, clip: true}   # or null
    train:                   # ordered; each entry is one albumentations transform, or null to drop it
      hflip: {_target_: albumentations.HorizontalFlip, p: 0.5}
      ...

The train pipeline is ``train`` transforms followed by the resize; the eval pipeline is the
resize alone, so both see images of the same size and scale.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Mapping

import albumentations as A
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from pipeline.io.atomic import atomic_dir, atomic_write_json

RESIZE_MODES = ("letterbox", "stretch", "none")
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
    if mode == "none":
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


def build_pipeline(cfg: Mapping | DictConfig, train: bool, seed: int | None = None) -> A.Compose:
    """The train (``train=True``) or eval pipeline described by ``cfg``."""
    cfg = as_dict(cfg)
    steps = []
    if train:
        steps = [build_transform(name, spec) for name, spec in cfg["train"].items() if spec]
    steps += resize_transforms(cfg["input_size"], cfg["resize"], cfg["pad_fill"])
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
    return written


def describe(pipeline: A.Compose) -> list[str]:
    return [type(t).__name__ for t in pipeline.transforms]
