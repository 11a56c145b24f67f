"""Requests share one image-memory budget: each reserves its images' worst case (read from the headers) before
decoding and keeps its decoded pixels' share until it has answered, so N simultaneous large uploads, decoding or
waiting for the model, cannot hold more than the settings allow; a request that could never fit gets 413."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import httpx
import numpy as np
import pytest
from PIL import Image
from service_helpers import LiveServer, encode, hold_model, until

from models.image import DECODE_BYTES_PER_PIXEL, ImageHeader
from service.codec import DecodeBudget, request_bytes


def test_budget_holds_reservations_within_its_total_in_arrival_order() -> None:
    async def main() -> tuple[list[str], int]:
        budget = DecodeBudget(100)
        order: list[str] = []

        async def decode(name: str, nbytes: int, seconds: float) -> None:
            held = await budget.acquire(nbytes)
            order.append(name)
            assert budget.in_use <= budget.total
            await asyncio.sleep(seconds)
            held.release()

        tasks = [
            asyncio.create_task(decode("a", 60, 0.05)),
            asyncio.create_task(decode("big", 90, 0.01)),  # waits for a; then nothing passes it
            asyncio.create_task(decode("small", 10, 0.01)),  # would fit beside a, but arrived after big
        ]
        await asyncio.gather(*tasks)
        return order, budget.peak

    order, peak = asyncio.run(main())
    assert order == ["a", "big", "small"] and peak == 100


def test_budget_times_out_and_a_cancelled_wait_leaks_nothing() -> None:
    async def main() -> DecodeBudget:
        budget = DecodeBudget(100)
        held = await budget.acquire(80)
        with pytest.raises(TimeoutError):
            await budget.acquire(50, timeout=0.05)
        waiter = asyncio.create_task(budget.acquire(50))
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        held.release()
        everything = await budget.acquire(100)  # everything was given back
        assert budget.in_use == 100
        everything.release()
        with pytest.raises(ValueError, match="never fit"):
            await budget.acquire(101)
        return budget

    assert asyncio.run(main()).in_use == 0


def _gauge(text: str, kind: str) -> float:
    match = re.search(rf'^maskrcnn_decode_memory_bytes{{kind="{kind}"}} (\S+)$', text, re.MULTILINE)
    assert match, kind
    return float(match.group(1))


def test_simultaneous_large_uploads_stay_within_the_decode_budget(make_server) -> None:
    max_pixels = 3_000_000
    budget = max_pixels * max(DECODE_BYTES_PER_PIXEL.values())  # the least the settings accept
    server: LiveServer = make_server(max_image_pixels=max_pixels, decode_memory_bytes=budget, max_batch_size=8)
    rng = np.random.default_rng(0)
    upload = encode(Image.fromarray(rng.integers(0, 255, (1500, 1800, 3), dtype=np.uint8)), "PNG")  # 2.7 MP
    cost = 1500 * 1800 * DECODE_BYTES_PER_PIXEL["PNG"]

    async def storm() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            return await asyncio.gather(
                *(client.post("/detect", files={"image": upload}, params={"masks": "false"}) for _ in range(8))
            )

    responses = asyncio.run(storm())
    assert [r.status_code for r in responses] == [200] * 8
    with server.client() as client:
        text = client.get("/metrics").text
    assert _gauge(text, "budget") == budget
    assert cost <= _gauge(text, "peak") <= budget  # at most budget // cost decodes at once, never all 8
    assert _gauge(text, "in_use") == 0


def test_request_bytes_are_every_decoded_image_plus_the_largest_decode_on_top() -> None:
    png, jpeg = ImageHeader(100, 10, "RGB", "PNG", 1), ImageHeader(50, 10, "RGB", "JPEG", 1)
    assert request_bytes([png]) == png.decode_bytes == 1000 * 8
    assert request_bytes([png, jpeg]) == 3000 + 1500 + max(5000, 5000)  # JPEG: 13 - 3 per pixel on top
    assert request_bytes([]) == 0


def test_a_shrunk_reservation_lets_a_waiting_one_in_at_once() -> None:
    async def main() -> list[str]:
        budget, order = DecodeBudget(100), []
        held = await budget.acquire(90)

        async def waiter() -> None:
            (await budget.acquire(50)).release()
            order.append("waiter")

        task = asyncio.create_task(waiter())
        await asyncio.sleep(0.01)
        order.append("shrink")
        held.shrink(30)  # 60 free now: the waiter fits
        await asyncio.wait_for(task, 5)
        held.release()
        held.release()  # twice: nothing more
        assert budget.in_use == 0
        return order

    assert asyncio.run(main()) == ["shrink", "waiter"]


def test_decoded_images_stay_in_the_budget_until_answered_and_a_request_that_cannot_fit_gets_413(make_server) -> None:
    side = 1000
    budget = side * side * max(DECODE_BYTES_PER_PIXEL.values())  # the least the settings accept: 17 MB
    server: LiveServer = make_server(max_image_pixels=side * side, decode_memory_bytes=budget, max_batch_size=4)
    png = encode(Image.new("RGB", (side, side), (90, 120, 40)), "PNG")  # decodes in 8 B/pixel, holds 3
    files = [("images", (f"{i}.png", png, "image/png")) for i in range(5)]
    with server.client() as client:
        error = client.post("/detect/batch", files=files)  # 5 x 3 MB held + 5 MB to decode one > 17 MB
    assert error.status_code == 413 and error.json()["error"]["code"] == "images_too_large"
    assert "MASKRCNN_DECODE_MEMORY_BYTES" in error.json()["error"]["message"]
    running, released = hold_model(server)
    state = server.app.state
    answers: dict[str, httpx.Response] = {}

    def post(name: str, route: str, upload: list) -> None:
        answers[name] = httpx.post(f"{server.url}{route}", files=upload, timeout=30)

    first = threading.Thread(target=post, args=("batch", "/detect/batch", files[:4]))
    second = threading.Thread(target=post, args=("single", "/detect", [("image", ("x.png", png, "image/png"))]))
    first.start()
    try:
        assert running.wait(20)
        assert state.decode_budget.in_use == 4 * side * side * 3  # decoded, waiting for the model: still held
        second.start()  # needs 8 MB with 5 MB free: waits for the batch to answer, not decoded yet
        assert until(lambda: state.decode_budget.waiting == 1)
        assert state.decode_budget.in_use == 4 * side * side * 3 and state.batcher.depth == 0
    finally:
        released.set()
        first.join(30)
        if second.ident is not None:  # started
            second.join(30)
    assert answers["batch"].status_code == answers["single"].status_code == 200
    assert state.decode_budget.in_use == 0 and state.decode_budget.peak <= budget


def test_the_memory_wait_counts_against_the_request_timeout(make_server) -> None:
    """A request that waited for memory gets only what is left of its timeout for the model: 504 at its own
    deadline, not a whole timeout after it got the memory."""
    side, timeout = 1000, 1.5
    budget = side * side * max(DECODE_BYTES_PER_PIXEL.values())  # 17 MB: the 4-image batch below fills it
    server: LiveServer = make_server(
        max_image_pixels=side * side, decode_memory_bytes=budget, max_batch_size=4, request_timeout_s=timeout
    )
    png = encode(Image.new("RGB", (side, side), (90, 120, 40)), "PNG")
    running, released = hold_model(server)
    answers: dict[str, tuple[int, float]] = {}

    def post(name: str, route: str, upload: list) -> None:
        start = time.monotonic()
        status = httpx.post(f"{server.url}{route}", files=upload, timeout=30).status_code
        answers[name] = (status, time.monotonic() - start)

    batch = [("images", (f"{i}.png", png, "image/png")) for i in range(4)]
    first = threading.Thread(target=post, args=("batch", "/detect/batch", batch))
    second = threading.Thread(target=post, args=("single", "/detect", [("image", ("x.png", png, "image/png"))]))
    first.start()
    try:
        assert running.wait(20)  # the batch holds the memory and the model (which never answers here)
        second.start()  # waits for memory until the batch times out, then for the held model
        first.join(30)
        second.join(30)
    finally:
        released.set()
    assert answers["batch"][0] == answers["single"][0] == 504
    assert answers["single"][1] < timeout + 0.75  # its own deadline; a fresh timeout for its jobs: ~2 x timeout
