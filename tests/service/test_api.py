"""Every route over real HTTP, and every bad input: each gets its 4xx JSON and the server keeps serving."""

from __future__ import annotations

import io
import struct
import zlib

import httpx
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from service_helpers import CLASS_NAMES, LiveServer, encode, photo_bytes


def detect(client: httpx.Client, data: bytes, route: str = "/detect", **params: object) -> httpx.Response:
    return client.post(route, files={"image": ("upload", data)}, params=params)


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    assert "Traceback" not in response.text and "/work" not in response.text and ".py" not in response.text


def assert_alive(server: LiveServer) -> None:
    with server.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert detect(client, photo_bytes(), masks="false").status_code == 200


def test_probes_and_model_card(server: LiveServer, tiny_weights) -> None:
    import hashlib

    with server.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready"}
        card = client.get("/v1/model").json()
        assert card["classes"] == [{"id": i, "name": n} for i, n in enumerate(CLASS_NAMES)][1:]
        assert card["device"] == "cpu" and card["precision"] == "fp32"
        assert card["architecture"]["backbone"] == "resnet18"
        assert card["weights_sha256"] == hashlib.sha256(tiny_weights.read_bytes()).hexdigest()
        spec = client.get("/openapi.json").json()
        assert {"/detect", "/detect/batch", "/visualize", "/v1/model", "/metrics"} <= set(spec["paths"])
        assert "DetectResponse" in spec["components"]["schemas"]
        assert "swagger-ui" in client.get("/docs").text


def test_detect_is_coco_results(server: LiveServer) -> None:
    with server.client() as client:
        response = detect(client, photo_bytes("astronaut.jpg"), score_threshold=0.0)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["image"] == {"width": 512, "height": 512}
    assert set(body["timing_ms"]) >= {"decode", "queue", "inference", "postprocess", "total"}
    dets = body["detections"]
    assert 0 < len(dets) <= 100
    assert [d["score"] for d in dets] == sorted((d["score"] for d in dets), reverse=True)
    for det in dets:
        assert det["label"] == CLASS_NAMES[det["category_id"]]
        assert det["segmentation"]["size"] == [512, 512]
        mask = mask_utils.decode({"size": [512, 512], "counts": det["segmentation"]["counts"].encode()})
        assert mask.shape == (512, 512)
    # Straight into pycocotools: COCO.loadRes accepts them once an image id is added.
    from pycocotools.coco import COCO

    gt = COCO()
    gt.dataset = {
        "images": [{"id": 1, "width": 512, "height": 512}],
        "annotations": [],
        "categories": [{"id": i, "name": n} for i, n in enumerate(CLASS_NAMES)][1:],
    }
    gt.createIndex()
    assert len(gt.loadRes([{**d, "image_id": 1} for d in dets]).anns) == len(dets)


def test_options_filter_per_request(server: LiveServer) -> None:
    with server.client() as client:
        everything = detect(client, photo_bytes(), score_threshold=0.0, masks="false").json()["detections"]
        top3 = detect(client, photo_bytes(), score_threshold=0.0, max_detections=3).json()["detections"]
        assert [d["score"] for d in top3] == pytest.approx([d["score"] for d in everything[:3]], abs=1e-5)
        assert all("segmentation" not in d for d in everything)
        k = len(everything) // 2
        cut = (everything[k]["score"] + everything[k + 1]["score"]) / 2
        above = detect(client, photo_bytes(), score_threshold=cut, masks="false").json()["detections"]
        assert len(above) == sum(d["score"] >= cut for d in everything)
        for query in ({"categories": "dog,cup"}, {"categories": ["dog", "3"]}):
            kept = client.post("/detect", files={"image": photo_bytes()}, params={"score_threshold": 0, **query})
            assert {d["label"] for d in kept.json()["detections"]} <= {"dog", "cup"}
        assert_error(detect(client, photo_bytes(), categories="zebra"), 422, "unknown_category")


@pytest.mark.parametrize(
    "name", ["jpeg", "png", "webp", "bmp", "gray_png", "palette_png", "rgba_png", "gray16_png", "cmyk_jpeg"]
)
def test_every_format_and_mode(server: LiveServer, variants: dict[str, bytes], name: str) -> None:
    with server.client() as client:
        response = detect(client, variants[name], masks="false")
    assert response.status_code == 200, response.text
    assert response.json()["image"] == {"width": 150, "height": 100}


def test_exif_orientation_is_applied(server: LiveServer) -> None:
    image = Image.open(io.BytesIO(photo_bytes("coffee.jpg"))).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    data = encode(image, "JPEG", exif=exif.tobytes())
    with server.client() as client:
        body = detect(client, data, masks="false").json()
    assert body["image"] == {"width": image.height, "height": image.width}


def test_batch_and_visualize(server: LiveServer) -> None:
    with server.client() as client:
        files = [("images", (n, photo_bytes(n))) for n in ("astronaut.jpg", "coffee.jpg", "chelsea.jpg")]
        response = client.post("/detect/batch", files=files, params={"max_detections": 5})
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r["image"]["width"] for r in results] == [512, 600, 451]
        assert all(len(r["detections"]) <= 5 for r in results)
        bad = [*files[:1], ("images", ("x", b"not an image"))]
        assert_error(client.post("/detect/batch", files=bad), 422, "not_an_image")
        png = detect(client, photo_bytes("coffee.jpg"), route="/visualize", score_threshold=0.0)
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        drawn = np.asarray(Image.open(io.BytesIO(png.content)).convert("RGB"))
        assert drawn.shape == (400, 600, 3)
        original = np.asarray(Image.open(io.BytesIO(photo_bytes("coffee.jpg"))).convert("RGB"))
        assert (drawn != original).any(axis=2).mean() > 0.001  # something was drawn


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height and whose data is a few bytes: a decompression bomb's shape."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


BAD_UPLOADS = [
    ("empty file", b"", 422, "empty_file"),
    ("text", b"hello, I am not an image", 422, "not_an_image"),
    ("truncated jpeg", photo_bytes()[:2000], 422, "corrupt_image"),
    ("truncated png", encode(Image.open(io.BytesIO(photo_bytes())), "PNG")[:3000], 422, "corrupt_image"),
    ("gif", encode(Image.new("RGB", (8, 8)), "GIF"), 415, "unsupported_format"),
    ("tiff", encode(Image.new("RGB", (8, 8)), "TIFF"), 415, "unsupported_format"),
    ("bomb 30000x30000", _png_header(30_000, 30_000), 413, "too_many_pixels"),
    ("bomb 12000x12000, between Pillow's warning and its error", _png_header(12_000, 12_000), 413, "too_many_pixels"),
    ("bomb beyond Pillow's guard", _png_header(100_000, 100_000), 413, "too_many_pixels"),
    ("sliver", encode(Image.new("RGB", (1000, 4)), "PNG"), 422, "bad_aspect_ratio"),
]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # 144 MP: Pillow warns, we refuse
@pytest.mark.parametrize(("what", "data", "status", "code"), BAD_UPLOADS, ids=[b[0] for b in BAD_UPLOADS])
def test_bad_uploads(server: LiveServer, what: str, data: bytes, status: int, code: str) -> None:
    with server.client() as client:
        assert_error(detect(client, data), status, code)
        assert_error(detect(client, data, route="/visualize"), status, code)
    assert_alive(server)


BAD_REQUESTS = [
    ("no body", {}, 422, "missing_field"),
    ("wrong field", {"files": {"picture": photo_bytes()}}, 422, "missing_field"),
    ("json body", {"json": {"image": "x"}}, 422, "missing_field"),
    ("score above 1", {"files": {"image": photo_bytes()}, "params": {"score_threshold": 1.5}}, 422, "invalid_request"),
    ("score not a number", {"files": {"image": photo_bytes()}, "params": {"score_threshold": "x"}}, 422, None),
    ("max_detections 0", {"files": {"image": photo_bytes()}, "params": {"max_detections": 0}}, 422, None),
    ("max_detections 101", {"files": {"image": photo_bytes()}, "params": {"max_detections": 101}}, 422, None),
    ("masks not a bool", {"files": {"image": photo_bytes()}, "params": {"masks": "maybe"}}, 422, None),
    (
        "garbage multipart",
        {"content": b"--x\r\nnonsense", "headers": {"content-type": "multipart/form-data"}},
        400,
        None,
    ),
]


@pytest.mark.parametrize(("what", "kwargs", "status", "code"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests(server: LiveServer, what: str, kwargs: dict, status: int, code: str | None) -> None:
    with server.client() as client:
        assert_error(client.post("/detect", **kwargs), status, code)
    assert_alive(server)


def test_unknown_route_and_method(server: LiveServer) -> None:
    with server.client() as client:
        assert_error(client.get("/nope"), 404, "not_found")
        assert_error(client.get("/detect"), 405, "method_not_allowed")


def test_upload_over_byte_limit(server: LiveServer) -> None:
    limit = server.settings.max_upload_bytes
    big = photo_bytes() + b"\0" * limit
    with server.client() as client:
        assert_error(detect(client, big), 413, "payload_too_large")  # refused on Content-Length

        def chunks():  # no Content-Length: counted while streaming
            yield b'--b\r\nContent-Disposition: form-data; name="image"; filename="x"\r\n\r\n'
            for _ in range(limit // 65536 + 2):
                yield b"\0" * 65536

        response = client.post("/detect", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
        assert_error(response, 413, "payload_too_large")
        assert_error(client.post("/detect/batch", content=b"x" * (17 * limit)), 413, "payload_too_large")
        metrics = client.get("/metrics").text
    # Refused before routing, yet counted under the route the path names.
    assert 'maskrcnn_requests_total{route="/detect",status="413"}' in metrics
    assert 'maskrcnn_requests_total{route="/detect/batch",status="413"}' in metrics
    assert 'route="unmatched",status="413"' not in metrics
    assert_alive(server)


def test_auth(make_server) -> None:
    server = make_server(api_key="s3cret")
    with server.client() as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        for method, path in [("GET", "/v1/model"), ("GET", "/metrics"), ("GET", "/openapi.json"), ("GET", "/docs")]:
            assert_error(client.request(method, path), 401, "unauthorized")
            wrong = client.request(method, path, headers={"Authorization": "Bearer nope"})
            assert_error(wrong, 401, "unauthorized")
            assert wrong.headers["www-authenticate"] == "Bearer"
        assert_error(detect(client, photo_bytes()), 401, "unauthorized")
    with server.client(headers={"Authorization": "Bearer s3cret"}) as client:
        assert client.get("/v1/model").status_code == 200
        assert client.get("/metrics").status_code == 200
        assert detect(client, photo_bytes(), masks="false").status_code == 200


def test_cors_off_by_default_and_on_when_configured(server: LiveServer, make_server) -> None:
    origin = {"Origin": "https://app.example"}
    with server.client() as client:
        assert "access-control-allow-origin" not in client.get("/healthz", headers=origin).headers
    configured = make_server(cors_origins=["https://app.example"])
    with configured.client() as client:
        assert client.get("/healthz", headers=origin).headers["access-control-allow-origin"] == "https://app.example"
        other = client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_metrics(server: LiveServer) -> None:
    with server.client() as client:
        detect(client, photo_bytes(), masks="false")
        detect(client, b"junk")
        text = client.get("/metrics").text
    assert 'maskrcnn_requests_total{route="/detect",status="200"}' in text
    assert 'maskrcnn_requests_total{route="/detect",status="422"}' in text
    for stage in ("decode", "queue", "inference", "postprocess", "total"):
        assert f'maskrcnn_stage_seconds_count{{stage="{stage}"}}' in text
    assert "maskrcnn_batch_size_count" in text and "maskrcnn_queue_depth" in text
    assert 'maskrcnn_rejections_total{reason="not_an_image"}' in text


def test_every_answer_carries_a_request_id(server: LiveServer) -> None:
    with server.client() as client:
        fresh = {client.get("/healthz").headers["x-request-id"] for _ in range(3)}
        assert len(fresh) == 3  # a new one each time
        assert client.get("/healthz", headers={"X-Request-ID": "trace-42"}).headers["x-request-id"] == "trace-42"
        junk = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"}).headers["x-request-id"]
        assert junk != "bad id\twith spaces" and len(junk) == 32
        refused = client.post("/detect", content=b"x" * (server.settings.max_upload_bytes + 1))  # before routing
        assert refused.status_code == 413 and refused.headers["x-request-id"]
        assert detect(client, b"junk").headers["x-request-id"]
