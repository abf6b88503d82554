"""Freed memory kept for reuse by the process that trains or evaluates (glibc's malloc on Linux).

glibc serves a large allocation (from 128 kB, a threshold that grows only up to 32 MB) with fresh
pages from the system and gives them back when it is freed, so every training step pays a page
fault per 4 kB of its large activations and gradients again. `train@detector` of the default DAG on
2 CPU cores: 160-167 s with 21-23 s of system time as glibc comes, 142-149 s with 5 s when freed
memory stays in the heap for the next step; the same peak memory and the same metrics to the last
digit (docs/benchmarks.md, "Freed memory kept for reuse"). torch's CPU allocator has no cache of its
own (only its GPU allocator has), so the setting is glibc's: what ``MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=...`` would do at start, applied from the entry points (pipeline/cli.py).
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's malloc.h
KEEP_UP_TO = 2**31 - 1  # bytes free at the heap's top before glibc returns them (mallopt takes an int)
USER_SETTINGS = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")


def keep_freed_memory() -> bool:
    """Large blocks from the heap, kept there when freed; True where this process's malloc took it.
    Left as it is where the user set glibc's malloc variables, and off Linux (other C libraries)."""
    if not sys.platform.startswith("linux") or any(name in os.environ for name in USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # a C library without mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, KEEP_UP_TO) == 1
