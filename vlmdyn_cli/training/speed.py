"""CPU speed settings for small models (MEASURED.md: allocation-dominated steps).

glibc returns freed memory to the OS and maps big blocks fresh each time;
for training steps that allocate the same large tensors again and again
that costs more than the arithmetic. Raising the mmap and trim thresholds
(what MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ do at start-up) keeps
the blocks in the heap. ``mallopt`` applies it to the running process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def tune_malloc(threshold: int = 1 << 30) -> bool:
    """Keep freed blocks in the heap (glibc only); returns True when applied."""
    if os.environ.get("VLMDYN_NO_MALLOPT") == "1":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, min(threshold, 32 << 20)) == 1
        ok &= libc.mallopt(M_TRIM_THRESHOLD, threshold) == 1
        return bool(ok)
    except (OSError, AttributeError):
        return False


def set_threads(threads: int, local_world: int = 1) -> int:
    import torch

    if threads <= 0:
        threads = max(1, (os.cpu_count() or 1) // max(local_world, 1))
    torch.set_num_threads(threads)
    return threads
