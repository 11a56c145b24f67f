"""Timeouts and client hang-ups are ordinary events: counted in /metrics, never an ERROR line or a traceback in
the server's log (a real `maskrcnn serve` process, its output read whole after a graceful stop)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
from service_helpers import photo_bytes, serve_process


def _hang_up_while_queued(port: int) -> None:
    """Send a whole /detect request, then close the connection while it waits for batch-mates."""
    data = photo_bytes()
    body = b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\n\r\n' + data + b"\r\n--b--\r\n"
    head = (
        f"POST /detect HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head + body)
        time.sleep(0.3)


def test_timeouts_and_hang_ups_are_counted_and_never_logged_as_errors(tiny_weights: Path) -> None:
    settings = {
        "MASKRCNN_MAX_BATCH_SIZE": "8",
        "MASKRCNN_MAX_BATCH_WAIT_MS": "1500",  # a lone request waits 1.5 s for batch-mates ...
        "MASKRCNN_REQUEST_TIMEOUT_S": "0.8",  # ... but its deadline comes first: 504
        "MASKRCNN_LOG_LEVEL": "info",
    }
    with serve_process(tiny_weights, **settings) as (proc, url):
        port = int(url.rsplit(":", 1)[1])
        for _ in range(2):
            response = httpx.post(f"{url}/detect", files={"image": photo_bytes()}, timeout=30)
            assert response.status_code == 504 and response.json()["error"]["code"] == "timeout"
            time.sleep(0.8)  # the batching window it opened closes: the next request opens its own
        for _ in range(2):
            _hang_up_while_queued(port)
        time.sleep(1.0)  # let the server notice the hang-ups and the queued jobs expire
        metrics = httpx.get(f"{url}/metrics").text
        assert 'maskrcnn_rejections_total{reason="timeout"} 2.0' in metrics, metrics
        assert 'maskrcnn_rejections_total{reason="disconnected"} 2.0' in metrics, metrics
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    assert "model demo" not in output  # this is the tiny model's log, started and stopped cleanly
    assert " 504 " in output  # the access log still shows each one, at INFO
    for bad in ("ERROR", "CRITICAL", "Traceback", "never retrieved", "CancelledError"):
        assert bad not in output, output
