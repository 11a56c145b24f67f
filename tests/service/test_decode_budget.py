"""Concurrent decodes share one memory budget: each reserves its image's worst-case decode memory (read from
the header) before decoding, so N simultaneous large uploads cannot hold more than the settings allow."""

from __future__ import annotations

import asyncio
import re

import httpx
import numpy as np
import pytest
from PIL import Image
from service_helpers import LiveServer, encode

from models.image import DECODE_BYTES_PER_PIXEL
from service.codec import DecodeBudget


def test_budget_holds_reservations_within_its_total_in_arrival_order() -> None:
    async def main() -> tuple[list[str], int]:
        budget = DecodeBudget(100)
        order: list[str] = []

        async def decode(name: str, nbytes: int, seconds: float) -> None:
            async with budget.reserve(nbytes):
                order.append(name)
                assert budget.in_use <= budget.total
                await asyncio.sleep(seconds)

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
        async with budget.reserve(80):
            with pytest.raises(TimeoutError):
                async with budget.reserve(50, timeout=0.05):
                    pass
            waiter = asyncio.create_task(budget.reserve(50).__aenter__())
            await asyncio.sleep(0.01)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        async with budget.reserve(100):  # everything was given back
            assert budget.in_use == 100
        with pytest.raises(ValueError, match="never fit"):
            async with budget.reserve(101):
                pass
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
