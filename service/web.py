"""The browser page: `/` and its static files (plain HTML + JS, no build step, nothing from a CDN).

Both routes are open (no API key) and left out of the OpenAPI schema: the page holds no secret, it asks the
user for the key and sends it with its own calls to /v1/model and /detect. Only the files named in `FILES`
are served, so no path from the URL ever reaches the filesystem.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from .errors import ApiError

STATIC = Path(__file__).resolve().parent / "static"
FILES = {
    "app.js": "text/javascript",
    "rle.js": "text/javascript",
    "style.css": "text/css",
}
# Revalidate on each load (cheap, ETag-backed), so a new release is never hidden behind a stale app.js.
CACHE = {"Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    """The single page: upload, overlay, detections table."""
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=CACHE)


@router.get("/static/{name}")
async def static(name: str) -> FileResponse:
    """One of the page's own files; anything else is a 404 in the API's error shape."""
    media_type = FILES.get(name)
    if media_type is None:
        raise ApiError(404, "not_found", f"no static file {name!r}")
    return FileResponse(STATIC / name, media_type=media_type, headers=CACHE)
