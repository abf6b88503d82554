"""Deterministic stratified train/val/test split.

Samples are grouped by a stratum (the image label for classification; for detection
the rarest class present in the image, or "background" for images without boxes).
Inside each stratum, samples are ordered by id, shuffled with the seed, and cut by
the configured ratios with largest-remainder rounding, so each class keeps the
ratios as closely as whole images allow. Samples whose split the source fixed
(e.g. synthetic scenes) keep it; duplicates kept together follow their original.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np

from pipeline.data.manifest import SPLITS
from pipeline.data.records import Sample


def ratios_from_config(cfg) -> dict[str, float]:
    ratios = {name: cfg[name] for name in SPLITS}
    if any(r < 0 for r in ratios.values()) or not math.isclose(sum(ratios.values()), 1.0, abs_tol=1e-6):
        raise ValueError(f"data.split ratios {ratios} must be non-negative and sum to 1")
    return ratios


def allocate(n: int, ratios: dict[str, float]) -> dict[str, int]:
    """Split ``n`` items by ``ratios`` (largest remainder; ties favour train, then val)."""
    exact = {k: n * r for k, r in ratios.items()}
    counts = {k: int(math.floor(v)) for k, v in exact.items()}
    order = sorted(ratios, key=lambda k: (-(exact[k] - counts[k]), SPLITS.index(k)))
    for k in order[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def stratum(sample: Sample, box_frequency: Counter) -> str:
    if sample.label is not None:
        return f"class:{sample.label}"
    present = sample.box_labels or sample.labels  # the classes of the boxes, or of a multi-label image
    if not present:
        return "background"
    return f"class:{min(set(present), key=lambda c: (box_frequency[c], c))}"


def assign_splits(samples: list[Sample], ratios: dict[str, float], seed: int) -> None:
    """Set ``split`` on every sample that has none; deterministic for a given seed."""
    free = [s for s in samples if s.split is None and s.duplicate_of is None]
    box_frequency = Counter(label for s in free for label in s.box_labels or s.labels)
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in free:
        groups[stratum(s, box_frequency)].append(s)
    rng = np.random.default_rng(seed)
    for key in sorted(groups):
        group = sorted(groups[key], key=lambda s: s.id)
        order = rng.permutation(len(group))
        counts = allocate(len(group), ratios)
        names = [name for name in SPLITS for _ in range(counts[name])]
        for name, index in zip(names, order):
            group[index].split = name
    by_id = {s.id: s for s in samples}
    for s in samples:
        if s.duplicate_of is not None and s.split is None:
            s.split = by_id[s.duplicate_of].split


def require_training_splits(counts: dict[str, list], where) -> None:
    """A training needs train and val items; an evaluation (on any dataset) does not."""
    if not counts["train"] or not counts["val"]:
        raise ValueError(f"{where}: training needs train and val samples (found {len(counts['train'])} and "
                         f"{len(counts['val'])}); check data.split")


def evaluated_splits(splits, available: dict) -> list[str]:
    """The configured splits (``evaluate.<model>.splits``) in order; one the data cannot have is an error."""
    unknown = [s for s in splits if s not in available]
    if unknown:
        raise ValueError(f"evaluate: split(s) {', '.join(unknown)} unknown; choose from {', '.join(available)}")
    return list(splits)
