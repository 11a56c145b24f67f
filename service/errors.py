"""One error shape for every failure: `{"error": {"code", "message"}}`, never a traceback, path or version.

Routes and helpers raise `ApiError` (an HTTPException, so FastAPI's body parsing re-raises it untouched);
the handlers installed by `install` turn it, Starlette's own HTTPExceptions and request validation errors
into that shape, and any unexpected exception into a bare 500.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("service")

_DEFAULT_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    500: "internal_error",
    503: "unavailable",
    504: "timeout",
}


class ApiError(StarletteHTTPException):
    """A failure with an HTTP status, a stable machine-readable code and a message safe to show a client."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code = code


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = getattr(exc, "code", None) or _DEFAULT_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(exc.status_code, code, message, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """pydantic's errors, reduced to where and what (no input echo: it may be large or binary)."""
    assert isinstance(exc, RequestValidationError)
    parts, codes = [], set()
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
        message = str(err.get("msg", "invalid"))
        if "Expected UploadFile" in message:  # a text field where a file was expected
            message = 'must be a file: a part with Content-Disposition: form-data; name="..."; filename="..."'
            codes.add("not_a_file")
        parts.append(f"{where}: {message}" if where else message)
    if all(err.get("type") == "missing" for err in exc.errors()):
        codes.add("missing_field")
    code = codes.pop() if len(codes) == 1 else "invalid_request"
    return error_response(422, code, "; ".join(parts) or "invalid request")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal error")


def install(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
