"""`Client`: the synchronous SDK over httpx. `AsyncClient` (async_client.py) has the same API, awaited."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from types import TracebackType

import httpx

from . import _request
from .errors import MaskRCNNError
from .inputs import ImageInput
from .results import DetectResult, Health, ModelInfo
from .retry import DEFAULT_MAX_RETRIES, Budget


class Client:
    """A connection pool to one service.

    url: the service's base URL (e.g. http://localhost:8000). api_key: sent as `Authorization: Bearer`.
    timeout: seconds for a whole call, all attempts and retry waits included (one budget: no retry is made
    whose wait would pass it; each attempt gets the remaining budget as its httpx connect/read/write
    timeout, and running out raises APITimeoutError).
    max_retries: retries after a connection error, a 503 or a 504, waiting Retry-After (capped at 30 s) when
    the server sent one, else min(0.5 * 2**n, 8) s with jitter; other 4xx and 500 are never retried
    (see `retry`). Use as a context manager, or call close().
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        self.url, self.timeout, self.max_retries = url.rstrip("/"), timeout, max_retries
        self._http = httpx.Client(base_url=self.url, headers=_request.headers(api_key), timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def detect(
        self,
        image: ImageInput,
        score_threshold: float | None = None,
        max_detections: int | None = None,
        categories: Iterable[str | int] | str | None = None,
        masks: bool = True,
    ) -> DetectResult:
        """POST /detect: one image (path, bytes, binary file, PIL image or HxWx3 uint8 array) -> DetectResult.

        score_threshold: 0..1, inclusive (None: the model's default); max_detections: 1..100; categories:
        names or category ids to keep; masks=False leaves segmentation None. Raises a MaskRCNNError subclass
        (InvalidRequestError, UnsupportedMediaTypeError, UnavailableError, APIConnectionError, ...).
        """
        params = _request.detect_params(score_threshold, max_detections, categories, masks)
        return _request.detect_result(self._send(_request.detect_call(image, params)))

    def detect_batch(
        self,
        images: Sequence[ImageInput],
        score_threshold: float | None = None,
        max_detections: int | None = None,
        categories: Iterable[str | int] | str | None = None,
        masks: bool = True,
    ) -> list[DetectResult]:
        """POST /detect/batch: several images in one request -> one DetectResult per image, in order.
        Same options and errors as `detect`; the server caps the count (422 too_many_images) and the images'
        memory together (413 images_too_large, a PayloadTooLargeError: send fewer per call)."""
        params = _request.detect_params(score_threshold, max_detections, categories, masks)
        return _request.batch_results(self._send(_request.batch_call(images, params)))

    def model(self) -> ModelInfo:
        """GET /v1/model: the model card (architecture, classes, device, precision, weights sha256)."""
        return _request.model_info(self._send(_request.Call("GET", "/v1/model")))

    def health(self) -> Health:
        """GET /readyz, not retried: Health(ready, status), truthy when the model is ready. A server still
        warming up gives ready=False; an unreachable one raises APIConnectionError."""
        return _request.health(self._send(_request.Call("GET", "/readyz"), retry=False, check=False))

    def _send(self, call: _request.Call, retry: bool = True, check: bool = True) -> httpx.Response:
        budget = Budget(self.timeout, self.max_retries if retry else 0)
        while True:
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    files=call.files or None,
                    timeout=max(budget.remaining(), 0.001),
                )
                return _request.checked(response) if check else response
            except (httpx.HTTPError, MaskRCNNError) as failure:
                wait = budget.wait_or_raise(failure, self.url)
            time.sleep(wait)
