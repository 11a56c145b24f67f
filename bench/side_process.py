"""A reference side of a bench in a process of its own, so that it runs as its users run it.

A CPU `Predictor` changes process-wide malloc settings (models/host_memory.py: freed blocks kept instead of
unmapped), and those speed up any other model in the same process too: torchvision eager fp32 on the bench photo
took 5.5-6.1 s per image with glibc's defaults and 4.2 s after `retain_freed_memory()` (bench/RESULTS.md,
2026-11-29). A reference run in the bench's own process would thus be timed with part of our speed-up. Here the
side is built and run in a spawned child (a fresh interpreter with the C library's defaults); the bench's
sides still take turns, the child timing each of its runs itself (`Measured`), so the pipe costs nothing.

    with SideProcess(functools.partial(build, model, photo)) as reference:
        stats = compare({"torchvision": reference, "ours": ours}, device, repeat)

`build` and its arguments cross to the child as one plain pickle, so a model among them arrives as a private
copy, as a user's process would hold it (multiprocessing's own pickler would move its tensors to shared memory,
in /dev/shm and in the caller too): a module-level function with picklable arguments.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any

import torch

from bench.timing import Measured, PeakMemory, timed


class SideProcess:
    """`build()` -> a side (a callable) in a spawned child; calling this object runs it there once.

    Each call returns a `Measured`: the child's own wall seconds and peak RSS growth for the run (CUDA: peak
    allocated bytes on `device`), and the side's output. Keyword arguments of the call go to the side.
    Raises: RuntimeError with the child's traceback when building or running the side fails there.
    """

    def __init__(self, build: Callable[[], Callable[..., object]], device: torch.device | str = "cpu") -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        payload = pickle.dumps(build)  # before the child starts: an unpicklable build raises here
        self._child = context.Process(target=_serve, args=(child_conn, payload, str(device)), daemon=True)
        self._child.start()
        child_conn.close()
        try:
            self._answer()  # the side is built
        except RuntimeError:
            self.close()
            raise

    def __call__(self, **kwargs: Any) -> Measured:
        self._conn.send(kwargs)
        return self._answer()

    def _answer(self) -> Any:
        try:
            ok, value = self._conn.recv()
        except EOFError:
            self._child.join(timeout=5)  # reaped, so that its exit code is known
            raise RuntimeError(f"the side's process ended (exit code {self._child.exitcode})") from None
        if not ok:
            raise RuntimeError(f"the side failed in its process:\n{value}")
        return value

    def close(self) -> None:
        """End the child (it has up to 30 s to finish) and the pipe; calling it again does nothing."""
        if self._child.is_alive():
            with contextlib.suppress(OSError):  # the child may have ended since
                self._conn.send(None)
            self._child.join(timeout=30)
        if self._child.is_alive():
            self._child.kill()
            self._child.join()
        self._conn.close()

    def __enter__(self) -> SideProcess:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def _serve(conn: Connection, payload: bytes, device: str) -> None:
    """The child: build the side, then run it once per call until None arrives or the caller is gone."""
    try:
        side = pickle.loads(payload)()
    except Exception:
        conn.send((False, traceback.format_exc()))
        return
    conn.send((True, None))
    try:
        while (kwargs := conn.recv()) is not None:
            try:
                with PeakMemory(torch.device(device)) as mem:
                    seconds, out = timed(lambda: side(**kwargs), torch.device(device))
                conn.send((True, Measured(seconds, mem.peak_bytes, out)))
            except Exception:
                conn.send((False, traceback.format_exc()))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return  # the caller ended or was interrupted: nothing left to answer
