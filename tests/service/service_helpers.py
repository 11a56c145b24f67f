"""Helpers for the service tests: a REAL uvicorn on 127.0.0.1 (free port, in a thread), photo bytes."""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from PIL import Image

from service.app import create_app
from service.config import Settings

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
CLASS_NAMES = ("__background__", "cat", "dog", "cup", "person")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """uvicorn.Server running create_app(settings) in a background thread (signals stay with pytest)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app = create_app(settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, wait_ready: bool = True, timeout: float = 60) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            assert self.thread.is_alive(), "server failed to start"
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        while wait_ready and not self.app.state.ready:
            assert time.monotonic() < deadline, "model did not warm up"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)


def save_tiny_model(path: Path) -> Path:
    """The tiny preset (seed 0, CLASS_NAMES) saved at `path`: the model every live-server test serves."""
    import torch

    import models
    from models import weights

    torch.manual_seed(0)
    weights.save(models.build_model(models.preset("tiny", class_names=CLASS_NAMES)), path)
    return path


@contextlib.contextmanager
def server_factory(**defaults: Any) -> Iterator[Any]:
    """make(wait_ready=True, **settings) -> a started LiveServer (Settings from `defaults` then `settings`);
    every server made is stopped when the block ends."""
    started: list[LiveServer] = []

    def make(wait_ready: bool = True, **overrides: Any) -> LiveServer:
        server = LiveServer(Settings(**{**defaults, **overrides})).start(wait_ready=wait_ready)
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            with contextlib.suppress(Exception):
                server.stop()


def photo_bytes(name: str = "chelsea.jpg") -> bytes:
    return (FIXTURES / name).read_bytes()


def encode(image: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@contextlib.contextmanager
def serve_process(weights: Path, **env: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A real `maskrcnn serve` process on a free port (settings from MASKRCNN_* `env`), ready: (process, url).

    Its stdout and stderr go to one pipe the test may read after stopping it; it is killed if still alive.
    """
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "maskrcnn_cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "MASKRCNN_WEIGHTS": str(weights), "MASKRCNN_DEVICE": "cpu", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not get ready"
            time.sleep(0.1)
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.kill()


def hold_model(server: LiveServer) -> tuple[threading.Event, threading.Event]:
    """Make `server`'s model runs wait for the returned `released` event (30 s at most); `running` is set when
    one starts. This server's engine only (it is a frozen dataclass: the attribute is set past it)."""
    running, released = threading.Event(), threading.Event()
    engine = server.app.state.engine
    real_run = engine.run

    def held_run(jobs: list) -> list:
        running.set()
        assert released.wait(30)
        return real_run(jobs)

    object.__setattr__(engine, "run", held_run)
    return running, released


def until(condition: Callable[[], bool], timeout: float = 20) -> bool:
    """Poll `condition` every 10 ms until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
