"""The prepared data and augmentation pipelines of a trial, made once per distinct config.

A trial may change any key, `data` and `augment` included, so it cannot reuse the DVC outputs
blindly: `prepare` and `augment` run into a cache folder named by the hash of the config they
read (data + seed; then augment), and later trials with the same settings reuse it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pipeline.augment.stage import run_augment
from pipeline.data.prepare import prepare
from pipeline.io.atomic import atomic_dir


def config_hash(*parts) -> str:
    plain = [OmegaConf.to_container(p, resolve=True) if isinstance(p, DictConfig) else p for p in parts]
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:16]


def trial_data(cfg: DictConfig, cache_dir: str | Path) -> tuple[Path, Path, Path]:
    """(manifest, augmentation pipelines folder, preview folder) for ``cfg``, built if missing."""
    cache_dir = Path(cache_dir)
    seed = cfg.seed
    prepared_key = config_hash(cfg.data, seed)
    prepared = cache_dir / f"prepared-{prepared_key}"
    if not (prepared / "prepared/manifest.json").is_file():
        with atomic_dir(prepared, keep_existing=True) as tmp:
            prepare(cfg.data, seed, tmp / "prepared", tmp / "reports", tmp / "metrics.json")
    augmented = cache_dir / f"augment-{config_hash(prepared_key, cfg.augment)}"
    manifest = prepared / "prepared/manifest.json"
    if not (augmented / "augment").is_dir():
        with atomic_dir(augmented, keep_existing=True) as tmp:
            run_augment(cfg.augment, manifest, tmp / "augment", tmp / "reports", seed)
    return manifest, augmented / "augment", augmented / "reports"
