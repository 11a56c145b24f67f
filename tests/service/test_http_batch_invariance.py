"""Over HTTP, an image's answer never depends on other clients' traffic: /detect under 8 concurrent clients
with mixed sizes, and /detect/batch, give each image what it gets alone (the demo model, real PNG uploads)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from service_helpers import LiveServer

from service.config import DEMO_WEIGHTS
from tests.scenes import assert_same_results, png, scene

UPLOADS = {
    "small": png(scene(320, 256, seed=1)),
    "large": png(scene(640, 480, seed=2)),
    "portrait": png(scene(240, 400, seed=3)),
    "small_other": png(scene(300, 240, seed=4)),
    "wide": png(scene(500, 200, seed=5)),
}


@pytest.fixture(scope="module")
def demo_server(make_server) -> LiveServer:
    # Batches of up to 8 that wait 100 ms to fill: concurrent clients share forwards.
    return make_server(weights=DEMO_WEIGHTS, max_batch_size=8, max_batch_wait_ms=100)


@pytest.fixture(scope="module")
def alone(demo_server: LiveServer) -> dict[str, list[dict[str, Any]]]:
    """Each upload's detections when it is the only request the server has."""
    answers = {}
    with demo_server.client() as client:
        for name, data in UPLOADS.items():
            response = client.post("/detect", files={"image": (f"{name}.png", data)})
            assert response.status_code == 200, response.text
            assert response.json()["timing_ms"]["batch_size"] == 1
            answers[name] = response.json()["detections"]
    assert all(answers.values()), "the demo model should find the shapes"
    return answers


def test_concurrent_clients_with_mixed_sizes_get_their_alone_answers(
    demo_server: LiveServer, alone: dict[str, list[dict[str, Any]]]
) -> None:
    names = list(UPLOADS)

    async def client_session(client: httpx.AsyncClient, start: int) -> list[tuple[str, dict[str, Any]]]:
        answers = []
        for step in range(3):
            name = names[(start + step) % len(names)]
            response = await client.post("/detect", files={"image": (f"{name}.png", UPLOADS[name])})
            assert response.status_code == 200, response.text
            answers.append((name, response.json()))
        return answers

    async def storm() -> list[tuple[str, dict[str, Any]]]:
        limits = httpx.Limits(max_connections=8)
        async with httpx.AsyncClient(base_url=demo_server.url, timeout=60, limits=limits) as client:
            sessions = await asyncio.gather(*(client_session(client, i) for i in range(8)))
        return [answer for session in sessions for answer in session]

    answers = asyncio.run(storm())
    assert max(body["timing_ms"]["batch_size"] for _, body in answers) > 1, "no request shared a forward"
    for name, body in answers:
        assert_same_results(alone[name], body["detections"])


def test_detect_batch_gives_each_file_its_alone_answer(
    demo_server: LiveServer, alone: dict[str, list[dict[str, Any]]]
) -> None:
    order = ["large", "small", "portrait", "small_other", "wide", "small"]
    files = [("images", (f"{name}.png", UPLOADS[name])) for name in order]
    with demo_server.client() as client:
        response = client.post("/detect/batch", files=files)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == len(order)
    for name, result in zip(order, results, strict=True):
        assert_same_results(alone[name], result["detections"])
