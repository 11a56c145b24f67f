"""AsyncClient: the same API awaited, the same answers and errors as Client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from maskrcnn_client import AsyncClient, Client, InvalidRequestError


def test_async_client_gives_what_client_gives(sdk_server, photo_dir: Path) -> None:
    photos = sorted(photo_dir.glob("*.jpg"))

    async def run() -> tuple:
        async with AsyncClient(sdk_server.url) as client:
            alone = await asyncio.gather(*(client.detect(p, max_detections=5) for p in photos))
            batch = await client.detect_batch(photos, max_detections=5)
            return alone, batch, await client.model(), await client.health()

    alone, batch, info, health = asyncio.run(run())
    with Client(sdk_server.url) as client:
        expected = [client.detect(p, max_detections=5).detections for p in photos]
    assert [r.detections for r in alone] == expected == [r.detections for r in batch]
    assert info.classes and health.ready


def test_async_client_raises_typed_errors(sdk_server) -> None:
    async def run() -> None:
        async with AsyncClient(sdk_server.url) as client:
            await client.detect(b"junk")

    with pytest.raises(InvalidRequestError) as caught:
        asyncio.run(run())
    assert caught.value.status == 422 and caught.value.request_id
