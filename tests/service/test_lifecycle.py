"""Start, readiness, deadlines, disconnects, graceful shutdown, and the CLI's one-line refusals."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch
from safetensors.torch import save_file
from service_helpers import LiveServer, free_port, photo_bytes, serve_process

import models
from models.weights import FORMAT as WEIGHTS_FORMAT
from service import cli
from service import config as service_config
from service.config import Settings
from service.engine import Engine


def test_readiness_before_and_after_warmup(tiny_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    real_warmup = Engine.warmup

    def slow_warmup(self: Engine) -> None:
        assert release.wait(30)
        real_warmup(self)

    monkeypatch.setattr(Engine, "warmup", slow_warmup)
    server = LiveServer(Settings(weights=tiny_weights, device="cpu")).start(wait_ready=False)
    try:
        with server.client() as client:
            assert client.get("/healthz").status_code == 200
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["error"]["code"] == "not_ready"
            assert ready.headers["retry-after"]
            early = client.post("/detect", files={"image": photo_bytes()})
            assert early.status_code == 503 and "retry-after" in early.headers
            release.set()
            deadline = time.monotonic() + 30
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert client.post("/detect", files={"image": photo_bytes()}).status_code == 200
    finally:
        release.set()
        server.stop()


def test_request_past_its_deadline_gets_504_and_is_not_run(make_server) -> None:
    # A lone request waits up to 1 s for batch-mates, but its deadline is 0.3 s.
    server = make_server(request_timeout_s=0.3, max_batch_wait_ms=1000, max_batch_size=8)
    with server.client() as client:
        before = client.get("/metrics").text
        response = client.post("/detect", files={"image": photo_bytes()})
        assert response.status_code == 504 and response.json()["error"]["code"] == "timeout"
        time.sleep(1.0)  # the batch closes with nothing alive in it
        after = client.get("/metrics").text
    count = lambda text: [ln for ln in text.splitlines() if ln.startswith("maskrcnn_batch_size_count")]  # noqa: E731
    assert count(before) == count(after)
    assert 'maskrcnn_rejections_total{reason="timeout"}' in after


def _raw_post(port: int) -> socket.socket:
    """Send a whole /detect request on a raw socket and return it (unread): closing it is a disconnect."""
    body = photo_bytes()
    head = b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\n\r\n' + body + b"\r\n--b--\r\n"
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        b"POST /detect HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        + f"Content-Length: {len(head)}\r\n\r\n".encode()
        + head
    )
    return sock


def _wait_until(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_disconnected_client_frees_its_slot(tiny_weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    running, release = threading.Event(), threading.Event()
    real_run = Engine.run

    def held_run(self: Engine, jobs: list) -> list:
        running.set()
        assert release.wait(30)
        return real_run(self, jobs)

    monkeypatch.setattr(Engine, "run", held_run)
    settings = Settings(
        weights=tiny_weights, device="cpu", queue_size=1, max_batch_images=1, max_batch_size=1, max_batch_wait_ms=0
    )
    server = LiveServer(settings).start()
    batcher = server.app.state.batcher
    try:
        first = _raw_post(server.port)  # the worker runs it, held until release
        assert running.wait(20)
        second = _raw_post(server.port)  # fills the one queue slot
        _wait_until(lambda: batcher.depth == 1)
        with server.client() as client:
            full = client.post("/detect", files={"image": photo_bytes()})
            assert full.status_code == 503 and full.json()["error"]["code"] == "queue_full"
            assert full.headers["retry-after"]
            second.close()  # the client goes away: its slot is free again
            _wait_until(lambda: batcher.depth == 0)
            result: dict[str, httpx.Response] = {}
            thread = threading.Thread(
                target=lambda: result.setdefault("r", client.post("/detect", files={"image": photo_bytes()}))
            )
            thread.start()
            _wait_until(lambda: batcher.depth == 1)  # accepted into the freed slot
            release.set()
            thread.join(30)
            assert result["r"].status_code == 200
            assert 'maskrcnn_rejections_total{reason="disconnected"}' in client.get("/metrics").text
            assert b" 200 OK" in first.recv(100)
        first.close()
    finally:
        release.set()
        server.stop()


def test_sigterm_drains_the_request_in_flight(tiny_weights: Path) -> None:
    with serve_process(tiny_weights, MASKRCNN_MAX_BATCH_WAIT_MS="3000") as (proc, url):
        result: dict[str, httpx.Response] = {}
        thread = threading.Thread(
            target=lambda: result.setdefault(
                "r", httpx.post(f"{url}/detect", files={"image": photo_bytes()}, timeout=30)
            )
        )
        thread.start()
        # Once decoded, the request waits in the batcher (3 s batching window): now send SIGTERM.
        _wait_until(lambda: 'maskrcnn_stage_seconds_count{stage="decode"} 1.0' in httpx.get(f"{url}/metrics").text)
        proc.terminate()  # SIGTERM
        thread.join(30)
        assert result["r"].status_code == 200, result["r"].text
        assert proc.wait(30) in (0, -15)  # uvicorn re-raises SIGTERM after its graceful shutdown
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/healthz")


def _serve_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], weights: str | None) -> str:
    if weights is None:
        monkeypatch.delenv("MASKRCNN_WEIGHTS", raising=False)
    else:
        monkeypatch.setenv("MASKRCNN_WEIGHTS", weights)
    assert cli.serve(["--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("maskrcnn serve: "), err
    return err


def test_cli_refuses_bad_weights_in_one_line(
    tmp_path: Path, tiny_weights: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(service_config, "DEMO_WEIGHTS", tmp_path / "demo.safetensors")  # whether or not the demo exists
    assert "MASKRCNN_WEIGHTS" in _serve_error(monkeypatch, capsys, None)
    assert "no such file" in _serve_error(monkeypatch, capsys, str(tmp_path / "missing.safetensors"))
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(tiny_weights.read_bytes()[:5000])
    assert "unreadable safetensors" in _serve_error(monkeypatch, capsys, str(truncated))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(os.urandom(4096))
    assert "neither safetensors nor a torch checkpoint" in _serve_error(monkeypatch, capsys, str(junk))
    wrong = tmp_path / "wrong_shape.safetensors"
    small = models.build_model(models.preset("tiny", num_classes=3))
    config = json.dumps(models.preset("tiny").to_dict())
    save_file(
        {k: v.contiguous() for k, v in small.state_dict().items()},
        str(wrong),
        {"format": WEIGHTS_FORMAT, "config": config},
    )
    assert "do not fit" in _serve_error(monkeypatch, capsys, str(wrong))
    checkpoint = tmp_path / "not_maskrcnn.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, checkpoint)
    assert "not a Mask R-CNN checkpoint" in _serve_error(monkeypatch, capsys, str(checkpoint))
    monkeypatch.setenv("MASKRCNN_QUEUE_SIZE", "0")
    assert "MASKRCNN_QUEUE_SIZE" in _serve_error(monkeypatch, capsys, str(tiny_weights))
    # A batch larger than the queue could never be served: refused at start, naming both limits.
    monkeypatch.setenv("MASKRCNN_QUEUE_SIZE", "4")
    err = _serve_error(monkeypatch, capsys, str(tiny_weights))
    assert "MASKRCNN_QUEUE_SIZE (4) must be at least MASKRCNN_MAX_BATCH_IMAGES (16)" in err, err


def test_out_of_memory_is_a_503_and_the_server_lives_on(make_server) -> None:
    server: LiveServer = make_server()
    predictor = server.app.state.engine.predictor
    sizes: list[int] = []

    def out_of_memory(images, options=None, masks=True):
        sizes.append(len(images))
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    predictor.detect = out_of_memory  # after warm-up: an instance attribute shadows the method
    try:
        with server.client() as client:
            response = client.post("/detect", files={"image": photo_bytes()})
            assert response.status_code == 503 and response.json()["error"]["code"] == "out_of_memory"
            assert response.headers["retry-after"]
            assert sizes == [1]
    finally:
        del predictor.detect
    with server.client() as client:
        assert client.post("/detect", files={"image": photo_bytes()}).status_code == 200
