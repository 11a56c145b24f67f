"""One exception class per kind of failure, all subclasses of `MaskRCNNError`.

Every error carries `.status` (the HTTP status, None for transport failures), `.code` (the service's stable
machine-readable code from `{"error": {"code", "message"}}`, e.g. `queue_full`, `unsupported_format`),
`.message` and `.request_id` (the response's `X-Request-ID`: quote it to find the request in the server's
logs). `from_response` maps a response to its class by status.
"""

from __future__ import annotations

from typing import Any

import httpx

REQUEST_ID_HEADER = "X-Request-ID"


class MaskRCNNError(Exception):
    """Base class of every error the SDK raises."""

    def __init__(
        self, message: str, *, status: int | None = None, code: str | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id

    def __str__(self) -> str:
        parts = [str(self.status)] if self.status is not None else []
        if self.code:
            parts.append(self.code)
        where = f" (request id {self.request_id})" if self.request_id else ""
        return f"{' '.join(parts)}: {self.message}{where}" if parts else f"{self.message}{where}"


class APIConnectionError(MaskRCNNError):
    """The server could not be reached, or the connection broke (no HTTP status). Retried."""


class APITimeoutError(APIConnectionError):
    """The call's time budget (`timeout`) ran out before an answer came."""


class APIStatusError(MaskRCNNError):
    """The server answered with an error status; the base of every status-specific class below."""

    status: int


class BadRequestError(APIStatusError):
    """400: malformed multipart body."""


class AuthenticationError(APIStatusError):
    """401: missing or wrong API key."""


class PermissionDeniedError(APIStatusError):
    """403."""


class NotFoundError(APIStatusError):
    """404: no such route (a URL that is not the service?)."""


class PayloadTooLargeError(APIStatusError):
    """413: body over the byte cap, image over the pixel cap, or a request whose images together need more than
    the server's image memory (`images_too_large`)."""


class UnsupportedMediaTypeError(APIStatusError):
    """415: an image format the service does not accept (GIF, TIFF, ...)."""


class InvalidRequestError(APIStatusError):
    """422: missing field, not an image, truncated image, parameter out of range, unknown category."""


class ServerError(APIStatusError):
    """5xx. A plain 500 is never retried."""


class UnavailableError(ServerError):
    """503: not ready, queue full, decode memory busy, out of memory. Retried, honouring Retry-After."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class GatewayTimeoutError(ServerError):
    """504: the request passed the server's own timeout before the model could run it. Retried."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: InvalidRequestError,
    503: UnavailableError,
    504: GatewayTimeoutError,
}


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The `Retry-After` header in seconds (the service sends integer seconds), or None."""
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def from_response(response: httpx.Response) -> APIStatusError:
    """The exception for an error response (status >= 400), with code and message from its JSON body when
    it has the service's shape, else the status's reason phrase."""
    code, message = None, response.reason_phrase or f"HTTP {response.status_code}"
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            code = body["error"].get("code") or None
            message = body["error"].get("message") or message
    except ValueError:
        pass
    status = response.status_code
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else APIStatusError)
    kwargs: dict[str, Any] = {"status": status, "code": code, "request_id": response.headers.get(REQUEST_ID_HEADER)}
    if cls is UnavailableError:
        kwargs["retry_after"] = retry_after_seconds(response)
    return cls(message, **kwargs)
