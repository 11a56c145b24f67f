"""Typed errors from a live server, and the retry policy: Retry-After honoured, 4xx never retried, one time
budget per call."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from maskrcnn_client import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    Client,
    InvalidRequestError,
    MaskRCNNError,
    UnavailableError,
    UnsupportedMediaTypeError,
)
from maskrcnn_client.retry import backoff_seconds
from PIL import Image
from service_helpers import encode, free_port


def _retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "maskrcnn_client" and r.getMessage().startswith("retry")
    ]


def test_a_gif_is_unsupported_media_type_with_code_status_and_request_id(sdk_server) -> None:
    gif = encode(Image.new("RGB", (8, 8)), "GIF")
    with Client(sdk_server.url) as client, pytest.raises(UnsupportedMediaTypeError) as caught:
        client.detect(gif)
    error = caught.value
    assert isinstance(error, MaskRCNNError)
    assert error.status == 415 and error.code == "unsupported_format" and error.message
    assert error.request_id and len(error.request_id) >= 8
    assert error.request_id in str(error) and "415" in str(error)


def test_junk_is_invalid_request_and_is_never_retried(sdk_server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="maskrcnn_client")
    start = time.monotonic()
    with Client(sdk_server.url, max_retries=5) as client, pytest.raises(InvalidRequestError) as caught:
        client.detect(b"this is not an image at all")
    assert caught.value.status == 422 and caught.value.code == "not_an_image" and caught.value.request_id
    assert _retries(caplog) == [] and time.monotonic() - start < 1.0


def test_a_parameter_out_of_range_is_invalid_request(sdk_server, photo: Path) -> None:
    with Client(sdk_server.url) as client, pytest.raises(InvalidRequestError) as caught:
        client.detect(photo, max_detections=1000)
    assert caught.value.status == 422


def test_a_server_with_an_api_key_wants_it(make_sdk_server, photo: Path) -> None:
    server = make_sdk_server(api_key="s3cret")
    with Client(server.url) as client, pytest.raises(AuthenticationError) as caught:
        client.detect(photo)
    assert caught.value.status == 401 and caught.value.code == "unauthorized" and caught.value.request_id
    with Client(server.url, api_key="s3cret") as client:
        assert client.health()  # /readyz needs no key
        assert client.detect(photo, max_detections=2).detections


def test_an_unreachable_server_is_a_connection_error_after_retries(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="maskrcnn_client")
    client = Client(f"http://127.0.0.1:{free_port()}", max_retries=2, timeout=10)
    with client, pytest.raises(APIConnectionError) as caught:
        client.model()
    assert caught.value.status is None and "cannot reach" in caught.value.message
    assert len(_retries(caplog)) == 2


def test_a_503_is_retried_after_the_servers_retry_after(held_server, photo: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="maskrcnn_client")
    held_server.occupy(photo.read_bytes())
    held_server.release_after_a_rejection()  # the slots free up long before Retry-After: 1 ends
    start = time.monotonic()
    with Client(held_server.url, timeout=20) as client:
        result = client.detect(photo, max_detections=3)
    elapsed = time.monotonic() - start
    assert len(result.detections) == 3
    assert elapsed >= 0.95, elapsed
    assert _retries(caplog) and "in 1.00 s" in _retries(caplog)[0] and "queue_full" in _retries(caplog)[0]


def test_no_retry_wait_passes_the_time_budget(held_server, photo: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="maskrcnn_client")
    held_server.occupy(photo.read_bytes())
    start = time.monotonic()
    with Client(held_server.url, timeout=0.9, max_retries=5) as client, pytest.raises(UnavailableError) as caught:
        client.detect(photo)  # 503 + Retry-After: 1, which would end past the 0.9 s budget: raised at once
    assert time.monotonic() - start < 0.9
    assert caught.value.status == 503 and caught.value.retry_after == 1 and _retries(caplog) == []


def test_an_attempt_running_at_the_deadline_is_cut_there(held_server, photo: Path) -> None:
    held_server.running.clear()
    with Client(held_server.url, timeout=0.8) as client:
        start = time.monotonic()
        with pytest.raises(APITimeoutError):
            client.detect(photo)  # the model holds it past the budget
        assert 0.7 <= time.monotonic() - start < 1.5


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    for attempt, nominal in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        waits = [backoff_seconds(attempt) for _ in range(50)]
        assert all(0.75 * nominal <= w <= nominal for w in waits)
    assert backoff_seconds(0, retry_after=3) == 3 and backoff_seconds(0, retry_after=600) == 30
