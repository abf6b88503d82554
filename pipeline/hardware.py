"""The machine's settings that `auto` resolves: how many processes load the data, whether the
training is deterministic. No torch here: the configuration checks import this module.
"""

from __future__ import annotations

import os
from typing import Any

AUTO = "auto"
# Loader processes where `num_workers: auto` has cores to spare (a process each beyond the one that trains).
# Eight feed one GPU at the batch sizes of conf/train (`python benchmarks/training_throughput.py`); more
# cost memory and start-up time for no gain.
MAX_AUTO_WORKERS = 8
# With two cores or fewer a loader process takes a core from the training itself: none, the data is loaded
# in the training process.
MIN_CORES_FOR_WORKERS = 3
# `make repro`'s runner (pipeline/repro.py) gives each stage it runs side by side a share of the cores.
STAGE_CORES_ENV = "PIPELINE_STAGE_CORES"


def usable_cores() -> int:
    """The cores this process may use: those it may run on (a container's or `taskset`'s limit, not the
    machine's), or fewer where `make repro`'s runner gave its stage a share of them."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    share = os.environ.get(STAGE_CORES_ENV)
    if share is None:
        return cores
    if not share.isdigit() or int(share) < 1:
        raise ValueError(f"{STAGE_CORES_ENV}={share!r}: a count of cores (1 or more) is expected; unset it to use "
                         f"all {cores}")
    return min(cores, int(share))


def loader_workers(setting: Any) -> int:
    """``train.<model>.num_workers``: a count, or ``auto`` (none on 2 cores, else one per spare core up to 8)."""
    if setting == AUTO:
        cores = usable_cores()
        return 0 if cores < MIN_CORES_FOR_WORKERS else min(MAX_AUTO_WORKERS, cores - 1)
    return int(setting)


def check_loading(section: Any, key: str) -> None:
    """A training section's loader settings: ``num_workers`` a count or auto, ``image_cache_mb`` 0 or more."""
    workers = section.num_workers
    if workers != AUTO and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise ValueError(f"{key}.num_workers: {workers!r} is not a count of loader processes (0 or more) or auto")
    if section.image_cache_mb < 0:
        raise ValueError(f"{key}.image_cache_mb: {section.image_cache_mb} is below 0 (0 keeps no decoded image)")


def deterministic(setting: Any, device) -> bool | str:
    """Lightning's ``deterministic`` for ``trainer.deterministic``: ``auto`` is true on the CPU (the same
    numbers every run) and false on a GPU (cuDNN's fastest kernels; several have no deterministic
    version, and Lightning's ``true`` refuses to run them)."""
    return device.type == "cpu" if setting == AUTO else setting


def check_trainer(trainer: Any) -> None:
    value = trainer.get("deterministic", AUTO)
    if not (isinstance(value, bool) or value in (AUTO, "warn")):
        raise ValueError(f"trainer.deterministic: {value!r} is not true, false, warn or auto")
