"""The demo model says what it is: the model card's description, the sample image, and the web page showing both."""

from __future__ import annotations

import shutil
from collections.abc import Callable

import pytest
from service_helpers import LiveServer

from service import config as service_config

SHAPES = {"circle", "square", "triangle", "star"}


@pytest.fixture(scope="module")
def demo_server(make_server: Callable[..., LiveServer]) -> LiveServer:
    if not service_config.DEMO_WEIGHTS.exists():
        pytest.skip(f"no demo model at {service_config.DEMO_WEIGHTS}")
    return make_server(weights=service_config.DEMO_WEIGHTS)


def test_demo_model_card_names_the_shapes_and_the_pull_command(demo_server: LiveServer) -> None:
    with demo_server.client() as client:
        card = client.get("/v1/model").json()
    assert card["demo"] is True
    description = card["description"]
    assert all(shape in description for shape in SHAPES) and "maskrcnn synth" in description
    assert "maskrcnn weights pull maskrcnn_resnet50_fpn" in description
    assert "MASKRCNN_WEIGHTS=maskrcnn_resnet50_fpn maskrcnn serve" in description


def test_other_weights_get_architecture_and_class_count_and_no_demo_text(server: LiveServer) -> None:
    with server.client() as client:
        card = client.get("/v1/model").json()
    assert card["demo"] is False
    assert card["description"] == f"Mask R-CNN, resnet18 FPN (v1), {len(card['classes'])} classes"
    assert "demo" not in card["description"] and "pull" not in card["description"]


def test_sample_image_is_a_png_on_which_the_demo_model_finds_shapes(demo_server: LiveServer) -> None:
    with demo_server.client() as client:
        sample = client.get("/v1/sample")
        assert sample.status_code == 200 and sample.headers["content-type"] == "image/png"
        assert sample.content.startswith(b"\x89PNG") and len(sample.content) < 100_000
        result = client.post("/detect", files={"image": ("sample.png", sample.content, "image/png")})
    assert result.status_code == 200, result.text
    labels = {det["label"] for det in result.json()["detections"] if det["score"] >= 0.5}
    assert labels and labels <= SHAPES, labels


def test_web_page_shows_the_description_and_detects_in_the_sample(demo_server: LiveServer) -> None:
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no chromium on PATH (apt-get install -y chromium); browser downloads are not used")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            page.goto(demo_server.url + "/")
            page.wait_for_function("document.getElementById('model-description').textContent !== ''")
            assert "maskrcnn weights pull maskrcnn_resnet50_fpn" in page.text_content("#model-description")
            assert "`" not in page.text_content("#model-description")  # commands shown as code, not backticks
            assert page.locator("#model-description code").count() >= 2
            page.click("#sample")
            page.wait_for_function("document.getElementById('summary').textContent.startsWith('Showing')")
            assert page.locator("#detections tbody tr").count() >= 1
        finally:
            browser.close()
