from collections import Counter

import pytest

from pipeline.data.records import Sample
from pipeline.data.split import allocate, assign_splits, ratios_from_config

RATIOS = {"train": 0.7, "val": 0.2, "test": 0.1}


def classification_samples(counts: dict[int, int]) -> list[Sample]:
    return [Sample(id=f"c{label}_{i:03d}", file="", width=1, height=1, label=label)
            for label, n in counts.items() for i in range(n)]


def test_allocate_sums_and_rounds():
    for n in range(0, 60):
        counts = allocate(n, RATIOS)
        assert sum(counts.values()) == n
        for k, r in RATIOS.items():
            assert abs(counts[k] - n * r) < 1
    assert allocate(1, RATIOS) == {"train": 1, "val": 0, "test": 0}


def test_split_is_deterministic_and_order_independent():
    a, b = classification_samples({0: 50, 1: 30}), classification_samples({0: 50, 1: 30})
    assign_splits(a, RATIOS, seed=3)
    assign_splits(list(reversed(b)), RATIOS, seed=3)
    assert [s.split for s in a] == [s.split for s in b]
    c = classification_samples({0: 50, 1: 30})
    assign_splits(c, RATIOS, seed=4)
    assert [s.split for s in a] != [s.split for s in c]


def test_split_is_stratified_per_class():
    samples = classification_samples({0: 100, 1: 40, 2: 10})
    assign_splits(samples, RATIOS, seed=0)
    counts = Counter((s.label, s.split) for s in samples)
    for label, n in {0: 100, 1: 40, 2: 10}.items():
        for split, r in RATIOS.items():
            assert abs(counts[(label, split)] - n * r) < 1


def test_detection_strata_use_the_rarest_class_and_fixed_splits_stay():
    samples = [Sample(id=f"s{i}", file="", width=1, height=1, boxes=[[0, 0, 1, 1]] * 2,
                      box_labels=[0, 1 if i < 10 else 0]) for i in range(50)]
    samples.append(Sample(id="scene", file="", width=1, height=1, split="scene"))
    assign_splits(samples, RATIOS, seed=0)
    rare = Counter(s.split for s in samples[:10])
    assert rare == {"train": 7, "val": 2, "test": 1}
    assert samples[-1].split == "scene"


def test_bad_ratios_are_rejected():
    with pytest.raises(ValueError, match="sum to 1"):
        ratios_from_config({"train": 0.8, "val": 0.3, "test": 0.0})
