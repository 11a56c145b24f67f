"""Host memory for CPU inference: keep freed blocks in the process instead of handing them back to the kernel.

PyTorch's CPU tensors come from malloc. glibc serves a block above its mmap threshold (128 KiB, rising to at
most 32 MiB as such blocks are freed) with a fresh `mmap` and gives it back with `munmap` when freed, and a
feature map of an 800x1216 image is such a block. So every inference writes to about 0.8 GB of new pages at
fp32 (0.3 GB at bf16), and each first write is a page fault in which the kernel zeroes a 4 KiB page: ~200,000
faults per fp32 image, and calls 1.12x (fp32) and 1.33x (bf16) slower than without them (bench/RESULTS.md).
With M_MMAP_THRESHOLD and M_TRIM_THRESHOLD raised, freed blocks stay in malloc's heap and the next call reuses
them: what preloading tcmalloc or jemalloc does for PyTorch, without a library to preload. OpenVINO avoids the
faults by planning its buffers once.

Threads: a thread other than the main one allocates from an arena of its own, whose heaps hold at most 64 MiB
and are unmapped once empty whatever the thresholds say (124,000 faults per fp32 image when the service's
inference thread ran the model). M_ARENA_MAX = 1 makes threads created afterwards share the main arena, so call
`retain_freed_memory` from the main thread before starting the threads that run the model (the service does, at
start-up; `Predictor` calls it too, which covers a model run on the thread that built it).

Cost: the heap keeps its peak size (reused by the next image, not grown by it), and threads take turns in one
arena (allocation is a small part of a call here). Process-wide; Linux with glibc only: elsewhere nothing is set.
"""

from __future__ import annotations

import ctypes
import platform

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # glibc <malloc.h>
_LARGEST = 2**31 - 1  # mallopt takes an int
_applied = False


def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds and use one malloc arena, once per process (module docstring).

    Returns True when all three are set (now or by an earlier call), False where the C library is not glibc or
    refuses one of them (then large blocks may still be unmapped). Never raises.
    """
    global _applied
    if _applied:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)  # the C library this process already runs on
        settings = ((_M_ARENA_MAX, 1), (_M_MMAP_THRESHOLD, _LARGEST), (_M_TRIM_THRESHOLD, _LARGEST))
        _applied = all([libc.mallopt(option, value) == 1 for option, value in settings])
    except (OSError, AttributeError):
        return False
    return _applied
