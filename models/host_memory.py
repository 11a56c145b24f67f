"""Host memory for CPU inference: keep freed blocks in the process instead of handing them back to the kernel.

PyTorch's CPU tensors come from malloc. glibc serves a block above its mmap threshold (128 KiB, rising to at
most 32 MiB as such blocks are freed) with a fresh `mmap` and gives it back with `munmap` when freed, and a
feature map of an 800x1216 image is such a block. So every inference writes to about 0.8 GB of new pages at
fp32 (0.3 GB at bf16), and each first write is a page fault in which the kernel zeroes a 4 KiB page: ~200,000
faults per image, measured as 12% of the fp32 and 33% of the bf16 time of a call (bench/RESULTS.md). With
M_MMAP_THRESHOLD and M_TRIM_THRESHOLD raised, freed blocks stay in malloc's heap and the next call reuses them:
what preloading tcmalloc or jemalloc does for PyTorch, without a library to preload. OpenVINO avoids the faults
by planning its buffers once.

Cost: the heap keeps its peak size (reused by the next image, not grown by it). Process-wide; Linux with glibc
only: elsewhere the allocator is left as it is.
"""

from __future__ import annotations

import ctypes
import platform

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>
_LARGEST = 2**31 - 1  # mallopt takes an int
_GLIBC_MMAP_MAX = 32 * 2**20  # DEFAULT_MMAP_THRESHOLD_MAX on 64-bit, for a glibc that refuses more
_applied = False


def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds once per process, so large tensors are reused, not re-faulted.

    Returns True when the thresholds are set (now or by an earlier call), False where the C library is not
    glibc or refuses them. Never raises.
    """
    global _applied
    if _applied:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(None)  # the C library this process already runs on
        mmap_ok = libc.mallopt(_M_MMAP_THRESHOLD, _LARGEST) or libc.mallopt(_M_MMAP_THRESHOLD, _GLIBC_MMAP_MAX)
        trim_ok = libc.mallopt(_M_TRIM_THRESHOLD, _LARGEST)
    except (OSError, AttributeError):
        return False
    _applied = bool(mmap_ok and trim_ok)
    return _applied
