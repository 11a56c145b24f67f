"""When to retry and how long to wait: shared by `Client` and `AsyncClient`.

Retried: transport failures (`APIConnectionError`, but not `APITimeoutError`: the budget is spent), 503
(`UnavailableError`) and 504 (`GatewayTimeoutError`). Never: any other 4xx, nor a 500 (a bug does not heal
on its own). The wait before retry n (0-based) is the server's `Retry-After` when it sent one (capped at
`RETRY_AFTER_CAP_S`), else `min(0.5 * 2**n, 8)` seconds times a jitter in [0.75, 1]. One time budget covers
the whole call, every attempt and every wait: a retry whose wait would end past the deadline is not made,
and the last error is raised at once.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

import httpx

from .errors import APIConnectionError, APITimeoutError, GatewayTimeoutError, MaskRCNNError, UnavailableError

log = logging.getLogger("maskrcnn_client")

BASE_DELAY_S = 0.5
MAX_DELAY_S = 8.0
RETRY_AFTER_CAP_S = 30.0
DEFAULT_MAX_RETRIES = 2


def is_retryable(error: MaskRCNNError) -> bool:
    if isinstance(error, APITimeoutError):
        return False
    return isinstance(error, (APIConnectionError, UnavailableError, GatewayTimeoutError))


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry `attempt` (0-based): Retry-After (capped at 30 s) if given, else
    exponential backoff `min(0.5 * 2**attempt, 8)` with jitter (x 0.75..1)."""
    if retry_after is not None:
        return min(retry_after, RETRY_AFTER_CAP_S)
    return min(BASE_DELAY_S * 2**attempt, MAX_DELAY_S) * (1 - 0.25 * random.random())


@dataclass
class Budget:
    """One call's deadline (time.monotonic() seconds) and retry count."""

    timeout: float
    max_retries: int
    attempt: int = 0

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.timeout

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def wait_or_raise(self, failure: BaseException, url: str) -> float:
        """Seconds to sleep before the next attempt after `failure` (an httpx transport error or a
        MaskRCNNError from the answer); raises the SDK's error for it when no retry is to be made."""
        if isinstance(failure, MaskRCNNError):
            error = failure
        elif isinstance(failure, httpx.HTTPError):
            error = transport_error(failure, url)
        else:
            raise failure
        wait = self.next_wait(error)
        if wait is None:
            if error is failure:
                raise error
            raise error from failure
        return wait

    def next_wait(self, error: MaskRCNNError) -> float | None:
        """Seconds to sleep before retrying after `error`, or None when it must be raised: not retryable, out
        of retries, or the wait would pass the deadline."""
        if not is_retryable(error) or self.attempt >= self.max_retries:
            return None
        wait = backoff_seconds(self.attempt, getattr(error, "retry_after", None))
        if wait >= self.remaining():
            log.info("not retrying %s: waiting %.2f s would pass the call's time budget", error, wait)
            return None
        self.attempt += 1
        log.info("retry %d/%d in %.2f s after %s", self.attempt, self.max_retries, wait, error)
        return wait


def transport_error(exc: httpx.HTTPError, url: str) -> APIConnectionError:
    """The SDK's error for a failed transfer: APITimeoutError when the budget ran out, else APIConnectionError."""
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"no answer from {url} within the call's time budget ({type(exc).__name__})")
    return APIConnectionError(f"cannot reach {url}: {exc or type(exc).__name__}")
