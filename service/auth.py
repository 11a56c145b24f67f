"""Optional API key: when `MASKRCNN_API_KEY` is set, protected routes need `Authorization: Bearer <key>`.

Compared with `hmac.compare_digest` (constant time). `/healthz` and `/readyz` stay open for orchestrators.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .errors import ApiError

bearer = HTTPBearer(auto_error=False, description="the server's MASKRCNN_API_KEY, when one is set")


async def require_api_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    key = request.app.state.settings.api_key
    if key is None:
        return
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), key.get_secret_value().encode()):
        raise ApiError(401, "unauthorized", "missing or wrong API key", headers={"WWW-Authenticate": "Bearer"})
