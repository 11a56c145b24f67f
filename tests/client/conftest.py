"""Fixtures for the SDK tests: a REAL uvicorn on 127.0.0.1 serving a tiny random model (the pattern of
tests/service/conftest.py, whose LiveServer this reuses), and three small photos on disk.

The tiny model (random weights, 5 classes) finds its 100 detections in any photo within tens of ms; the
tests ask for at most 10 to keep masks and JSON small.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "service"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "client"))

from service_helpers import FIXTURES, LiveServer, hold_model, save_tiny_model, server_factory, until

from service.config import Settings

PHOTOS = ("chelsea.jpg", "coffee.jpg", "astronaut.jpg")
SIZE = (160, 120)


@pytest.fixture(scope="session")
def sdk_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("sdk_weights") / "tiny.safetensors")


@pytest.fixture(scope="session")
def make_sdk_server(sdk_weights: Path) -> Iterator[Callable[..., LiveServer]]:
    """make_sdk_server(**settings) -> a started LiveServer; all are stopped at the end of the session."""
    with server_factory(weights=sdk_weights, device="cpu", max_batch_wait_ms=5) as make:
        yield make


@pytest.fixture(scope="session")
def sdk_server(make_sdk_server: Callable[..., LiveServer]) -> LiveServer:
    """The shared server: no API key, default limits."""
    return make_sdk_server()


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of three small JPEGs (160x120), plus a text file that folder expansion must skip."""
    folder = tmp_path_factory.mktemp("photos")
    for name in PHOTOS:
        Image.open(FIXTURES / name).convert("RGB").resize(SIZE).save(folder / name, quality=90)
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="session")
def photo(photo_dir: Path) -> Path:
    return photo_dir / PHOTOS[0]


class HeldServer:
    """A server with one inference slot and one queue slot, whose model runs wait for `release`.

    occupy() sends two requests (from threads) that fill both slots: the next one gets 503 queue_full with
    Retry-After: 1 until release() is called.
    """

    def __init__(self, server: LiveServer) -> None:
        self.server, self.url = server, server.url
        self.running, self.released = hold_model(server)
        self.threads: list[threading.Thread] = []

    def _post(self, image: bytes) -> None:
        with self.server.client() as client:
            client.post("/detect", files={"image": image})

    def occupy(self, image: bytes) -> None:
        batcher = self.server.app.state.batcher
        for wait in (lambda: self.running.wait(20), lambda: until(lambda: batcher.depth == 1)):
            thread = threading.Thread(target=self._post, args=(image,), daemon=True)
            thread.start()
            self.threads.append(thread)
            assert wait()

    def release_after_a_rejection(self) -> None:
        """Release the model (from a thread) once the server has answered a request 503 queue_full."""

        def rejected() -> bool:
            with self.server.client() as client:
                return 'maskrcnn_rejections_total{reason="queue_full"} 1.0' in client.get("/metrics").text

        def watch() -> None:
            until(rejected)
            self.release()

        threading.Thread(target=watch, daemon=True).start()

    def release(self) -> None:
        self.released.set()
        for thread in self.threads:
            thread.join(30)


@pytest.fixture
def held_server(sdk_weights: Path) -> Iterator[HeldServer]:
    settings = Settings(
        weights=sdk_weights, device="cpu", queue_size=1, max_batch_images=1, max_batch_size=1, max_batch_wait_ms=0
    )
    held = HeldServer(LiveServer(settings).start())
    try:
        yield held
    finally:
        held.release()
        held.server.stop()
