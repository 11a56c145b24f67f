"""models/host_memory.py: with the thresholds raised, a thread that reallocates large tensors stops faulting."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only"
)

# A worker thread fills a 96 MiB tensor (more than a thread arena's 64 MiB heap) and frees it, six times; the
# minor page faults of the last three rounds on that thread are printed. (The first rounds may grow the heap:
# an aligned block freed among other allocations does not always fit the next one exactly.)
PROGRAM = """
import resource, sys, threading
from models.host_memory import retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory() and retain_freed_memory()
import torch
torch.set_num_threads(1)  # RUSAGE_THREAD counts this thread's faults: no OpenMP helpers touching pages
def work(out):
    faults = []
    for _ in range(6):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        torch.empty(24 * 2**20).fill_(1.0)
        faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
    out.append(sum(faults[3:]))
out = []
thread = threading.Thread(target=work, args=(out,))
thread.start()
thread.join()
print(out[0])
"""


def _faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


def test_retained_memory_is_reused_by_a_worker_thread_without_page_faults() -> None:
    assert _faults("default") > 30_000  # 3 x 96 MiB of fresh 4 KiB pages: ~73,700 faults
    assert _faults("retain") < 1_000
