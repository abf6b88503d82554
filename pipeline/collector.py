"""Python's cyclic garbage collector, run less often by the processes that train, evaluate and export.

CPython starts a collection of its youngest objects every 700 net allocations of container objects,
and a full one (every tracked object walked) after ten of the next generation's. Importing torch,
Lightning, torchvision and MLflow makes millions of long-lived objects, and each full collection walks
them all again: on 2 CPU cores that was 1.5 s of the 7.5 s an import of the training's modules takes,
and 13 % of the test suite's CPU (105 of 769 s over its Python processes; docs/benchmarks.md, "The
garbage collector run less often"). Tensors and nearly everything else are freed by reference counting
when their last reference goes; the collector only finds cycles, which wait a little longer for it now.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 100)  # youngest generation's net allocations; collections of the one below


def collect_less_often() -> None:
    """Raise each collection threshold to at least :data:`THRESHOLDS`: a higher one set before stays, and
    a collector turned off (``gc.disable()`` or a youngest threshold of 0) stays off."""
    current = gc.get_threshold()
    if current[0] == 0:
        return
    gc.set_threshold(*(max(now, wanted) for now, wanted in zip(current, THRESHOLDS)))
