"""Many clients at once: every request ends 200 or 503 + Retry-After, batches form, overload never hangs."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
from service_helpers import LiveServer, photo_bytes


async def _storm(url: str, clients: int, data: bytes, batch_every: int = 0) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def one(i: int) -> httpx.Response:
            if batch_every and i % batch_every == 0:
                files = [("images", ("a.jpg", data)), ("images", ("b.jpg", data))]
                return await client.post("/detect/batch", files=files, params={"masks": "false"})
            return await client.post("/detect", files={"image": ("x.jpg", data)}, params={"max_detections": 10})

        return await asyncio.gather(*(one(i) for i in range(clients)))


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, name
    return float(match.group(1))


def test_32_clients_all_answered_and_batched(make_server) -> None:
    server: LiveServer = make_server(max_batch_size=8, max_batch_wait_ms=20, queue_size=64)
    responses = asyncio.run(_storm(server.url, 40, photo_bytes(), batch_every=5))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 503}, statuses
    assert all("retry-after" in r.headers for r in responses if r.status_code == 503)
    assert statuses.count(200) >= 32
    with server.client() as client:
        text = client.get("/metrics").text
    batches = _metric(text, "maskrcnn_batch_size_count")
    singles = _metric(text, 'maskrcnn_batch_size_bucket{le="1.0"}')
    assert batches - singles >= 1, "no batch larger than 1"
    assert _metric(text, "maskrcnn_batch_size_sum") / batches > 1.5
    ridden = [
        r.json()["timing_ms"]["batch_size"] for r in responses if r.status_code == 200 and "timing_ms" in r.json()
    ]
    assert max(ridden) > 1


def test_overload_with_a_tiny_queue_gets_503s_and_no_hang(make_server) -> None:
    server: LiveServer = make_server(max_batch_size=2, max_batch_wait_ms=5, queue_size=2, max_batch_images=2)
    start = time.monotonic()
    responses = asyncio.run(_storm(server.url, 48, photo_bytes()))
    assert time.monotonic() - start < 60
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(503) > 0 and statuses.count(200) > 0
    for response in responses:
        if response.status_code == 503:
            assert response.json()["error"]["code"] == "queue_full"
            assert int(response.headers["retry-after"]) >= 1
    with server.client() as client:
        assert 'maskrcnn_rejections_total{reason="queue_full"}' in client.get("/metrics").text
        assert client.post("/detect", files={"image": photo_bytes()}).status_code == 200  # still serving
