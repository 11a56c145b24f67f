"""Multipart uploads read the way clients send them, through FastAPI's documented custom-route hook.

Starlette's form parser, which FastAPI uses, has two blind spots on the upload path:
- a part named only by `filename*=utf-8''...` (RFC 2231, sent by some older clients for non-ASCII names)
  is parsed as a text field, since RFC 7578 section 4.2 forbids that syntax in form data; the route then
  answers "Expected UploadFile, received: str". Here such a part is a file, as its sender meant.
- a body cut short (a client or proxy that drops the connection's tail) is accepted as far as it goes, so
  a half-sent image simply goes missing: "image: Field required". Here a body that ends before its closing
  boundary is a 400 `malformed_multipart`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData
from starlette.formparsers import MultiPartException, MultiPartParser

from .errors import ApiError


class _UploadParser(MultiPartParser):
    """Starlette's parser, plus: `filename*` alone names a file; a missing closing boundary is an error."""

    complete = False

    def on_headers_finished(self) -> None:
        disposition = self._current_part.content_disposition or b""
        _, options = parse_options_header(disposition)
        if b"filename" not in options and b"filename*=" in disposition.lower():
            self._current_part.content_disposition = disposition + b'; filename="upload"'
        super().on_headers_finished()

    def on_end(self) -> None:
        self.complete = True
        super().on_end()

    async def parse(self) -> FormData:
        form = await super().parse()
        if not self.complete:
            await form.close()
            raise MultiPartException("the multipart body ends before its closing boundary (truncated upload?)")
        return form


class UploadRequest(Request):
    """A Request whose multipart bodies go through `_UploadParser`; other bodies as Starlette reads them."""

    async def form(  # type: ignore[override]  # FastAPI awaits it; the context-manager form is not used here
        self, *, max_files: int | float = 1000, max_fields: int | float = 1000, max_part_size: int = 1024 * 1024
    ) -> FormData:
        if self._form is None:
            content_type, _ = parse_options_header(self.headers.get("Content-Type"))
            if content_type != b"multipart/form-data":
                return await super().form(max_files=max_files, max_fields=max_fields, max_part_size=max_part_size)
            parser = _UploadParser(
                self.headers, self.stream(), max_files=max_files, max_fields=max_fields, max_part_size=max_part_size
            )
            try:
                self._form = await parser.parse()
            except MultiPartException as exc:
                raise ApiError(400, "malformed_multipart", exc.message) from None
        return self._form


class UploadRoute(APIRoute):
    """An APIRoute whose handler receives an `UploadRequest` (FastAPI's "custom Request and APIRoute class")."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Any:
            return await handler(UploadRequest(request.scope, request.receive))

        return handle
