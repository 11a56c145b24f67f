"""bench/side_process.py and bench/timing.py: a reference side runs in a fresh process, timed there, in turns."""

from __future__ import annotations

import functools
import os
import platform
import resource
import statistics

import pytest
import torch

from bench.side_process import SideProcess
from bench.timing import Measured, compare
from models.host_memory import retain_freed_memory


def _where(offset: int) -> object:
    def run(x: int = 0) -> tuple[int, int]:
        if x < 0:
            raise KeyError(f"side failed on {x}")
        return os.getpid(), x + offset

    return run


def _faults() -> object:
    """A side that fills and frees a 96 MiB tensor ten times: the median of its last eight rounds' page faults."""

    def run() -> float:
        faults = []
        for _ in range(10):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            torch.empty(24 * 2**20).fill_(1.0)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        return statistics.median(faults[2:])

    return run


def _holding(weights: torch.Tensor) -> object:
    def run() -> tuple[bool, float]:
        return weights.is_shared(), float(weights.sum())

    return run


def _exiting() -> object:
    def run() -> None:
        os._exit(3)

    return run


def _broken_build() -> object:
    raise ValueError("no such model file")


def test_side_runs_in_another_process_with_call_arguments_times_itself_and_outlives_a_failed_run() -> None:
    with SideProcess(functools.partial(_where, 10)) as side:
        measured = side(x=5)
        with pytest.raises(RuntimeError, match="side failed on -1"):  # the child's traceback, raised here
            side(x=-1)
        again = side()
    assert isinstance(measured, Measured) and measured.seconds > 0
    pid, value = measured.out
    assert pid != os.getpid() and value == 15
    assert again.out == (pid, 10)  # one process serves every call


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc settings")
def test_side_runs_with_default_malloc_settings_after_the_caller_retained_freed_memory() -> None:
    assert retain_freed_memory()  # what a CPU Predictor does to the bench's own process
    with SideProcess(_faults) as side:
        assert side().out > 20_000  # 96 MiB of fresh 4 KiB pages a round: ~24,600 faults; retained: 0


def test_a_side_that_cannot_be_built_raises_with_the_childs_traceback() -> None:
    with pytest.raises(RuntimeError, match="ValueError: no such model file"):
        SideProcess(_broken_build)


def test_compare_takes_a_measured_sides_own_time_memory_and_output() -> None:
    calls = []

    def measured() -> Measured:
        calls.append("measured")
        return Measured(seconds=7.0, peak_bytes=123, out="theirs")

    def plain() -> str:
        calls.append("plain")
        return "ours"

    stats = compare({"measured": measured, "plain": plain}, torch.device("cpu"), repeat=3)
    assert stats["measured"]["times"] == [7.0] * 3 and stats["measured"]["peak"] == 123
    assert stats["measured"]["out"] == "theirs" and stats["plain"]["out"] == "ours"
    assert 0 < stats["plain"]["median"] < 7.0
    assert calls == ["measured", "plain"] * 4  # one warm-up each, then turns


def test_a_model_reaches_the_child_as_a_private_copy_not_shared_memory() -> None:
    weights = torch.ones(1000)
    with SideProcess(functools.partial(_holding, weights)) as side:
        assert side().out == (False, 1000.0)  # not in /dev/shm in the child
    assert not weights.is_shared()  # nor moved there in the caller


def test_a_child_that_dies_is_reported_with_its_exit_code() -> None:
    with SideProcess(_exiting) as side, pytest.raises(RuntimeError, match="exit code 3"):
        side()
