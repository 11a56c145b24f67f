"""Dynamic batching on asyncio: requests wait in a bounded queue; one worker per device closes a batch at
`max_batch_size` images or `max_wait_s` after its first one, and runs it in a dedicated inference thread.

- Bounded: a full queue answers 503 + Retry-After at once instead of growing latency without limit.
- Deadlines: a job past its deadline is not run (504); its submitter stops waiting at the deadline itself.
- Cancellation: a job whose future is done (client gone, timed out) no longer counts against the queue and
  is skipped when a batch forms.
- No polling: the worker sleeps on an asyncio.Event between jobs (LitServe polls its queue in 1 ms steps).
- Decoding happens before `submit`, so a bad upload never reaches, let alone fails, a batch.
- `close()` refuses new jobs and lets the worker drain the queue: SIGTERM loses no accepted request.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import torch

from .errors import ApiError
from .schemas import DetectParams

RETRY_AFTER_S = 1


@dataclass(eq=False)
class Job:
    """One image waiting for the model; `future` gets its Detections (or an exception)."""

    image: torch.Tensor
    params: DetectParams
    deadline: float  # time.monotonic() seconds
    future: asyncio.Future[Any]
    enqueued: float = field(default_factory=time.monotonic)
    started: float = 0.0  # when its batch began running
    finished: float = 0.0
    batch_size: int = 0


def unavailable(code: str, message: str) -> ApiError:
    return ApiError(503, code, message, headers={"Retry-After": str(RETRY_AFTER_S)})


def timed_out() -> ApiError:
    return ApiError(504, "timeout", "the request timed out before the model could run it")


class Batcher:
    """Groups concurrent jobs into one `run(jobs)` call, executed in `executor` (one thread per device).

    run: jobs -> one result or exception per job, in order; it must not raise for a single bad job.
    on_batch: called with (batch size, queue depth) when a batch starts, for metrics.
    on_reject: called with a reason (queue_full, shutting_down, timeout) for metrics.
    """

    def __init__(
        self,
        run: Callable[[list[Job]], Sequence[Any]],
        executor: Executor,
        *,
        max_batch_size: int,
        max_wait_s: float,
        queue_size: int,
        on_batch: Callable[[int, int], None] = lambda size, depth: None,
        on_reject: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self._run = run
        self._executor = executor
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.queue_size = queue_size
        self._on_batch = on_batch
        self._on_reject = on_reject
        self._queue: collections.deque[Job] = collections.deque()
        self._wakeup = asyncio.Event()
        self._closed = False
        self._worker: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        """Jobs waiting whose submitter still wants them (cancelled ones free their slot at once)."""
        return sum(not job.future.done() for job in self._queue)

    def start(self) -> None:
        self._worker = asyncio.create_task(self._loop(), name="batcher")

    async def close(self) -> None:
        """Refuse new jobs, finish the queued ones, stop the worker."""
        self._closed = True
        self._wakeup.set()
        if self._worker is not None:
            await self._worker

    def new_job(self, image: torch.Tensor, params: DetectParams, timeout_s: float) -> Job:
        loop = asyncio.get_running_loop()
        return Job(image, params, time.monotonic() + timeout_s, loop.create_future())

    def submit(self, jobs: Sequence[Job]) -> None:
        """Enqueue all of `jobs` or none of them: 503 (queue full, shutting down) without waiting.

        A request larger than the whole queue could never be admitted; the settings refuse that configuration
        (`queue_size >= max_batch_images`), and this raises ValueError should a caller still try.
        """
        if len(jobs) > self.queue_size:
            raise ValueError(f"{len(jobs)} images can never fit a queue of {self.queue_size}")
        if self._closed:
            self._on_reject("shutting_down")
            raise unavailable("shutting_down", "the server is shutting down")
        if self.depth + len(jobs) > self.queue_size:
            self._on_reject("queue_full")
            raise unavailable("queue_full", "too many requests in the queue; retry later")
        self._queue.extend(jobs)
        self._wakeup.set()

    async def wait(self, jobs: Sequence[Job], disconnected: asyncio.Future[Any] | None = None) -> list[Any]:
        """Results of `jobs`, in order. Past the earliest deadline -> 504; if `disconnected` resolves first the
        jobs are cancelled (freeing their queue slots) and CancelledError is raised. A job's own failure (503
        out of memory, ...) is raised once all are done. Timeouts and disconnects are ordinary events: they are
        counted (`on_reject`) and leave no unretrieved exception behind for asyncio to log."""
        futures = [job.future for job in jobs]
        deadline = min(job.deadline for job in jobs)
        pending: set[asyncio.Future[Any]] = set(futures)
        try:
            while pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                waiters = pending | ({disconnected} if disconnected is not None else set())
                done, _ = await asyncio.wait(waiters, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                if disconnected is not None and disconnected in done:
                    self._on_reject("disconnected")
                    raise asyncio.CancelledError("client disconnected")
                pending -= done
        finally:
            for job in jobs:
                if job.future.cancel():  # not finished: its queue slot and its pixels are freed now
                    with contextlib.suppress(ValueError):  # (not there when its batch already took it)
                        self._queue.remove(job)
        if pending:
            self._on_reject("timeout")
            raise timed_out()
        errors = [fut.exception() for fut in futures]  # read them all, so asyncio logs none as unretrieved
        for error in errors:
            if error is not None:
                raise error
        return [fut.result() for fut in futures]

    async def _next(self, timeout: float | None) -> Job | None:
        """The next live job; None when the wait times out, or when closed and drained."""
        loop = asyncio.get_running_loop()
        end = None if timeout is None else loop.time() + timeout
        while True:
            while self._queue:
                job = self._queue.popleft()
                if not job.future.done():
                    return job
            if self._closed:
                return None
            left = None if end is None else end - loop.time()
            if left is not None and left <= 0:
                return None
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), left)
            except asyncio.TimeoutError:
                return None

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._next(None)
            if first is None:
                return
            batch = [first]
            close_at = loop.time() + self.max_wait_s
            while len(batch) < self.max_batch_size:
                job = await self._next(close_at - loop.time())
                if job is None:
                    break
                batch.append(job)
            now = time.monotonic()
            live = []
            for job in batch:
                if job.future.done():
                    continue
                if job.deadline <= now:  # too old: do not spend the model on it
                    self._on_reject("timeout")
                    job.future.set_exception(timed_out())
                    continue
                job.started, job.batch_size = now, len(batch)
                live.append(job)
            if not live:
                continue
            for job in live:
                job.batch_size = len(live)
            self._on_batch(len(live), self.depth)
            try:
                results = await loop.run_in_executor(self._executor, self._run, live)
            except BaseException as exc:  # the runner's contract is not to raise; never lose the worker
                results = [exc] * len(live)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            finished = time.monotonic()
            for job, result in zip(live, results, strict=True):
                job.finished = finished
                if job.future.done():
                    continue
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)
