"""The web page at `/`, driven in headless Chromium (Playwright) against a live server with the tiny model.

Debian's chromium is launched directly (no `playwright install`, no browser download); without it, or
without the playwright package, these tests skip and say which is missing.
"""

from __future__ import annotations

import base64
import io
import math
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from service_helpers import FIXTURES, LiveServer, photo_bytes

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

PHOTO = FIXTURES / "chelsea.jpg"
ALL = {"score_threshold": 0, "max_detections": 100}  # what the page asks for
DETECTION_ROWS = "#detections tbody tr"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        pytest.skip("the playwright package is missing (.venv/bin/pip install playwright)")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no chromium on PATH (apt-get install -y chromium); browser downloads are not used")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def open_page(page: Page, server: LiveServer) -> None:
    page.goto(server.url + "/")
    page.wait_for_function("document.getElementById('status').textContent !== ''")


def upload(page: Page, file: Path | dict[str, Any] = PHOTO) -> None:
    """Choose a file through the page's file input and wait until the table shows its detections."""
    page.set_input_files("#file", file)
    page.wait_for_function("document.getElementById('summary').textContent.startsWith('Showing')")


def set_threshold(page: Page, value: float) -> None:
    page.fill("#threshold", f"{value:.2f}")  # fires `input`, as dragging the slider does


def table_rows(page: Page) -> list[list[str]]:
    return page.eval_on_selector_all(DETECTION_ROWS, "rows => rows.map(r => [...r.cells].map(c => c.textContent))")


def detect(server: LiveServer, content: bytes | None = None, **params: Any) -> Any:
    with server.client() as client:
        files = {"image": ("chelsea.jpg", content or photo_bytes(), "image/jpeg")}
        return client.post("/detect", params=params, files=files).json()


def assert_rows_match(rows: list[list[str]], detections: list[dict[str, Any]]) -> None:
    """Same count and order; label exact, score to 3 decimals, box to 1 (within rounding of the last digit)."""
    assert len(rows) == len(detections)
    for i, (row, det) in enumerate(zip(rows, detections, strict=True)):
        index, label, score, box = row
        assert (index, label.strip()) == (str(i + 1), det["label"])
        assert math.isclose(float(score), det["score"], abs_tol=5e-4 + 1e-9)
        assert np.allclose([float(v) for v in box.split(",")], det["bbox"], atol=0.05 + 1e-9)


def canvas_pixels(page: Page) -> np.ndarray:
    """The overlay canvas read back exactly (PNG, lossless) as uint8[H, W, 3]."""
    url = page.evaluate("document.getElementById('overlay').toDataURL('image/png')")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))


def js_decode(page: Page, segmentation: dict[str, Any]) -> np.ndarray:
    """window.decodeRle's mask as bool[H, W] (sent back as a '0'/'1' string: compact and exact)."""
    height, width = segmentation["size"]
    bits = page.evaluate(
        "([counts, h, w]) => Array.from(window.decodeRle(counts, h, w)).join('')",
        [segmentation["counts"], height, width],
    )
    return np.frombuffer(bits.encode(), dtype=np.uint8).reshape(height, width) == ord("1")


def coco_decode(segmentation: dict[str, Any]) -> np.ndarray:
    return mask_utils.decode({"size": segmentation["size"], "counts": segmentation["counts"].encode()}).astype(bool)


def test_page_shows_the_model_name_and_its_classes(page: Page, server: LiveServer) -> None:
    open_page(page, server)
    with server.client() as client:
        model = client.get("/v1/model").json()
    text = page.inner_text("#model")
    assert model["name"] in text
    for cls in model["classes"]:
        assert cls["name"] in text
    assert page.eval_on_selector_all("#categories input:checked", "boxes => boxes.length") == len(model["classes"])


def test_table_matches_detect_and_filters_refilter_without_a_new_upload(
    page: Page, server: LiveServer, tmp_path: Path
) -> None:
    detect_requests: list[str] = []
    page.on(
        "request",
        lambda request: detect_requests.append(request.url) if urlparse(request.url).path == "/detect" else None,
    )
    open_page(page, server)
    upload(page)

    start = float(page.input_value("#threshold"))
    assert_rows_match(table_rows(page), detect(server, score_threshold=start)["detections"])

    scores = sorted(d["score"] for d in detect(server, **ALL)["detections"])
    middle = math.floor(scores[len(scores) // 2] * 100) / 100  # rows on both sides of it
    set_threshold(page, middle)
    rows = table_rows(page)
    assert len(rows) == sum(score >= middle for score in scores)
    assert_rows_match(rows, detect(server, score_threshold=middle)["detections"])

    hidden = rows[0][1].strip()
    page.get_by_label(hidden, exact=True).uncheck()
    kept = [det for det in detect(server, score_threshold=middle)["detections"] if det["label"] != hidden]
    assert_rows_match(table_rows(page), kept)

    page.hover(f"{DETECTION_ROWS} >> nth=0")
    page.screenshot(path=tmp_path / "web_page.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.screenshot(path=tmp_path / "web_page_phone.png", full_page=True)
    print("screenshots:", tmp_path / "web_page.png", tmp_path / "web_page_phone.png")
    assert len(detect_requests) == 1, detect_requests


def test_js_rle_decoder_matches_pycocotools_pixel_for_pixel(page: Page, server: LiveServer) -> None:
    open_page(page, server)
    for det in detect(server, **ALL)["detections"][:5]:
        assert (js_decode(page, det["segmentation"]) == coco_decode(det["segmentation"])).all()
    # Many runs of every length: long counts (several 5-bit chunks) and negative deltas in the string.
    rng = np.random.default_rng(0)
    blobs = np.kron(rng.random((30, 45)) > 0.6, np.ones((10, 10), dtype=bool))
    noisy = np.asfortranarray((blobs ^ (rng.random(blobs.shape) > 0.97)).astype(np.uint8))
    encoded = mask_utils.encode(noisy)
    segmentation = {"size": encoded["size"], "counts": encoded["counts"].decode()}
    assert (js_decode(page, segmentation) == noisy.astype(bool)).all()


def test_canvas_colours_the_first_mask_and_leaves_the_rest_of_the_image_alone(page: Page, server: LiveServer) -> None:
    open_page(page, server)
    upload(page)
    detections = detect(server, **ALL)["detections"]
    first = detections[0]
    threshold = math.floor(first["score"] * 100) / 100
    set_threshold(page, threshold)
    visible = [det for det in detections if det["score"] >= threshold]

    drawn = canvas_pixels(page).astype(int)
    photo = np.asarray(Image.open(PHOTO).convert("RGB")).astype(int)
    assert drawn.shape == photo.shape
    change = np.abs(drawn - photo).mean(axis=2)
    first_mask = coco_decode(first["segmentation"])
    assert first_mask.any() and change[first_mask].mean() > 10

    untouched = np.ones(first_mask.shape, dtype=bool)
    for det in visible:
        untouched &= ~coco_decode(det["segmentation"])
        x, y, w, h = det["bbox"]
        untouched[max(int(y) - 30, 0) : int(y + h) + 6, max(int(x) - 6, 0) : int(x + w) + 6] = False  # box, label
    assert untouched.sum() > 1000 and change[untouched].mean() < 2  # only JPEG decoders' rounding


def test_an_image_dropped_on_the_page_is_detected(page: Page, server: LiveServer) -> None:
    open_page(page, server)
    photo = base64.b64encode(photo_bytes()).decode()
    transfer = page.evaluate_handle(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "chelsea.jpg", { type: "image/jpeg" }));
            return transfer;
        }""",
        photo,
    )
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    page.wait_for_function("document.getElementById('summary').textContent.startsWith('Showing')")
    assert page.inner_text("#status").startswith(f"chelsea.jpg: {len(detect(server, **ALL)['detections'])} detections")


def test_page_says_a_key_is_needed_and_works_once_it_is_given(
    page: Page, make_server: Callable[..., LiveServer]
) -> None:
    server = make_server(api_key="web-page-secret")
    open_page(page, server)
    assert "API key is needed" in page.inner_text("#status")
    with page.expect_response(lambda response: urlparse(response.url).path == "/detect") as refused:
        page.set_input_files("#file", PHOTO)
    assert refused.value.status == 401
    page.wait_for_function("document.getElementById('status').textContent.includes('API key is needed')")

    page.get_by_label("API key").fill("web-page-secret")
    page.keyboard.press("Tab")  # `change` on leaving the field: the page retries the model card and the upload
    page.wait_for_function("document.getElementById('summary').textContent.startsWith('Showing')")
    assert "classes: cat, dog, cup, person" in page.inner_text("#model")
    assert page.evaluate("sessionStorage.getItem('maskrcnn.apiKey')") == "web-page-secret"


def test_api_errors_are_shown_in_one_line(page: Page, server: LiveServer) -> None:
    open_page(page, server)
    junk = b"this is not an image"
    error = detect(server, content=junk)["error"]
    page.set_input_files("#file", {"name": "notes.jpg", "mimeType": "image/jpeg", "buffer": junk})
    page.wait_for_selector("#status.error")
    assert page.inner_text("#status") == f"{error['message']} ({error['code']})"


def test_page_and_static_files_are_served_openly_and_kept_out_of_the_schema(
    make_server: Callable[..., LiveServer],
) -> None:
    server = make_server(api_key="web-page-secret")
    with server.client() as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        for name, media_type in (
            ("app.js", "text/javascript"),
            ("rle.js", "text/javascript"),
            ("style.css", "text/css"),
        ):
            response = client.get(f"/static/{name}")
            assert response.status_code == 200 and response.headers["content-type"].startswith(media_type)
        assert client.get("/static/web.py").json()["error"]["code"] == "not_found"
        assert client.get("/static/..%2Fweb.py").status_code == 404
        paths = client.get("/openapi.json", headers={"Authorization": "Bearer web-page-secret"}).json()["paths"]
    assert "/" not in paths and not any(path.startswith("/static") for path in paths)
