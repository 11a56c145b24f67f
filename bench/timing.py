"""Timing for the benches: wall seconds, peak memory, and sides that take turns (`compare`)."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Measured:
    """One run of a side that timed itself: wall seconds, peak memory growth in bytes, the side's output."""

    seconds: float
    peak_bytes: int
    out: object


class PeakMemory:
    """Peak memory above the starting point while the block runs: GPU allocator stats, or sampled CPU RSS."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_bytes = 0

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._base = _rss()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak_bytes = max(self.peak_bytes, _rss() - self._base)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device) - self._base
        else:
            self._stop.set()
            self._thread.join()
            self.peak_bytes = max(self.peak_bytes, _rss() - self._base)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, out


def compare(sides: dict[str, Callable[[], object]], device: torch.device, repeat: int) -> dict[str, dict]:
    """Warm each side up, then alternate runs; median seconds, peak memory and the last output of each.

    A side returns its output, or a `Measured` when it timed itself (then its figures are used).
    """
    stats: dict[str, dict] = {name: {"times": [], "peak": 0} for name in sides}
    for fn in sides.values():
        fn()
    for _ in range(repeat):
        for name, fn in sides.items():
            with PeakMemory(device) as mem:
                seconds, out = timed(fn, device)
            peak = mem.peak_bytes
            if isinstance(out, Measured):  # a side in a process of its own (bench/side_process.py) timed itself
                seconds, peak, out = out.seconds, out.peak_bytes, out.out
            stats[name]["times"].append(seconds)
            stats[name]["peak"] = max(stats[name]["peak"], peak)
            stats[name]["out"] = out
    for s in stats.values():
        s["median"] = statistics.median(s["times"])
    return stats
