"""What `Client` and `AsyncClient` share: building requests and reading answers (no I/O here)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from . import errors
from .inputs import ImageInput, to_upload
from .results import BatchResult, DetectResult, Health, ModelInfo

USER_AGENT = "maskrcnn-client/0.1"


@dataclass(frozen=True)
class Call:
    """One HTTP call, retried as a whole: method, path, query, multipart files."""

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    files: list[tuple[str, tuple[str, bytes, str]]] = field(default_factory=list)


def headers(api_key: str | None) -> dict[str, str]:
    out = {"User-Agent": USER_AGENT}
    if api_key:
        out["Authorization"] = f"Bearer {api_key}"
    return out


def detect_params(
    score_threshold: float | None,
    max_detections: int | None,
    categories: Iterable[str | int] | str | None,
    masks: bool,
) -> dict[str, Any]:
    """Query parameters; None leaves the server's default (the model's 0.05 and 100)."""
    params: dict[str, Any] = {"masks": "true" if masks else "false"}
    if score_threshold is not None:
        params["score_threshold"] = score_threshold
    if max_detections is not None:
        params["max_detections"] = max_detections
    if categories is not None:
        items = [categories] if isinstance(categories, str) else list(categories)
        params["categories"] = ",".join(str(c) for c in items)
    return params


def detect_call(image: ImageInput, params: dict[str, Any]) -> Call:
    return Call("POST", "/detect", params, [("image", to_upload(image))])


def batch_call(images: Sequence[ImageInput], params: dict[str, Any]) -> Call:
    if not images:
        raise ValueError("detect_batch needs at least one image")
    return Call("POST", "/detect/batch", params, [("images", to_upload(img, i)) for i, img in enumerate(images)])


def checked(response: httpx.Response) -> httpx.Response:
    """The response itself when it is a success; raises its `errors` class otherwise."""
    if response.status_code >= 400:
        raise errors.from_response(response)
    return response


def detect_result(response: httpx.Response) -> DetectResult:
    return DetectResult.model_validate(response.json())


def batch_results(response: httpx.Response) -> list[DetectResult]:
    return BatchResult.model_validate(response.json()).results


def model_info(response: httpx.Response) -> ModelInfo:
    return ModelInfo.model_validate(response.json())


def health(response: httpx.Response) -> Health:
    """GET /readyz's answer (200 or 503 alike) -> Health; other statuses raise."""
    if response.status_code == 503:
        error = errors.from_response(response)
        return Health(ready=False, status=error.code or "unavailable")
    body = checked(response).json()
    return Health(ready=True, status=str(body.get("status", "ready")))
