"""models/host_memory.py: with the thresholds raised, a thread that reallocates large tensors stops faulting."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only"
)

# A worker thread fills a 96 MiB tensor (more than a thread arena's 64 MiB heap) and frees it, ten times; the
# median of the minor page faults of rounds 3-10 on that thread is printed. With the thresholds raised the heap
# may still grow in an early round (an aligned block freed among other allocations does not always fit the next
# one exactly: measured here, rounds 1-2 always, round 3 or 4 now and then), never in most rounds.
PROGRAM = """
import resource, statistics, sys, threading
from models.host_memory import retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory() and retain_freed_memory()
import torch
torch.set_num_threads(1)  # RUSAGE_THREAD counts this thread's faults: no OpenMP helpers touching pages
def work(out):
    faults = []
    for _ in range(10):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        torch.empty(24 * 2**20).fill_(1.0)
        faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
    out.append(statistics.median(faults[2:]))
out = []
thread = threading.Thread(target=work, args=(out,))
thread.start()
thread.join()
print(out[0])
"""


def _faults(mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


def test_retained_memory_is_reused_by_a_worker_thread_without_page_faults() -> None:
    assert _faults("default") > 20_000  # 96 MiB of fresh 4 KiB pages each round: ~24,600 faults
    assert _faults("retain") < 1_000  # measured: 0
