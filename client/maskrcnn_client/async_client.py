"""`AsyncClient`: `Client`'s API (client.py) with every call awaited, over httpx.AsyncClient."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from types import TracebackType

import httpx

from . import _request
from .errors import MaskRCNNError
from .inputs import ImageInput
from .results import DetectResult, Health, ModelInfo
from .retry import DEFAULT_MAX_RETRIES, Budget


class AsyncClient:
    """A connection pool to one service, for asyncio. Same arguments, methods, time budget, retries and errors
    as `Client` (see its docstring): `async with AsyncClient(url) as client: result = await client.detect(...)`.
    Use as an async context manager, or call aclose().
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        self.url, self.timeout, self.max_retries = url.rstrip("/"), timeout, max_retries
        self._http = httpx.AsyncClient(base_url=self.url, headers=_request.headers(api_key), timeout=timeout)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def detect(
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
        return _request.detect_result(await self._send(_request.detect_call(image, params)))

    async def detect_batch(
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
        return _request.batch_results(await self._send(_request.batch_call(images, params)))

    async def model(self) -> ModelInfo:
        """GET /v1/model: the model card (architecture, classes, device, precision, weights sha256)."""
        return _request.model_info(await self._send(_request.Call("GET", "/v1/model")))

    async def health(self) -> Health:
        """GET /readyz, not retried: Health(ready, status), truthy when the model is ready. A server still
        warming up gives ready=False; an unreachable one raises APIConnectionError."""
        return _request.health(await self._send(_request.Call("GET", "/readyz"), retry=False, check=False))

    async def _send(self, call: _request.Call, retry: bool = True, check: bool = True) -> httpx.Response:
        budget = Budget(self.timeout, self.max_retries if retry else 0)
        while True:
            try:
                response = await self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    files=call.files or None,
                    timeout=max(budget.remaining(), 0.001),
                )
                return _request.checked(response) if check else response
            except (httpx.HTTPError, MaskRCNNError) as failure:
                wait = budget.wait_or_raise(failure, self.url)
            await asyncio.sleep(wait)
