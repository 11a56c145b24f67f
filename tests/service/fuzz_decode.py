"""Fuzz harness: decoding and request parsing, the code that reads untrusted bytes.

Each input is one selector byte and a payload:
  0: `codec.decode(payload)` directly;
  1: POST /detect with payload as the uploaded file (multipart built correctly around it);
  2: a raw request: payload = query string, b"\\n\\n", body (sent as multipart with boundary "b").
Requests go through the real FastAPI app in-process (body cap, multipart parsing, parameter validation,
decoding); a stub batcher answers 503 instead of running the model. A crash is an unexpected exception or
any other 5xx.

    python tests/service/fuzz_decode.py --ci          # atheris when installed: 5000 runs from the corpus
    python tests/service/fuzz_decode.py -atheris_runs=100000 tests/service/corpus   # longer, atheris flags
Without atheris, --ci falls back to random mutations of the corpus (same harness, no coverage guidance).
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
CORPUS = Path(__file__).resolve().parent / "corpus"
MAX_PIXELS = 4_000_000
sys.path.insert(0, str(ROOT))
# What reads untrusted bytes: imported inside `atheris.instrument_imports` when fuzzing for coverage feedback.
INSTRUMENTED = ["PIL", "python_multipart", "multipart", "starlette", "service"]


class _QueueAlwaysFull:
    """Stands in for the batcher: everything that reaches it was parsed and decoded fine."""

    depth = 0

    def new_job(self, image: Any, params: Any, timeout_s: float) -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(future=SimpleNamespace(cancel=lambda: None))

    def submit(self, job: Any) -> None:
        from service.batcher import unavailable

        raise unavailable("queue_full", "fuzzing")


def build_app() -> Any:
    """The real app with a real (tiny) engine marked ready, and no model run."""
    import torch

    import models
    from service.app import create_app
    from service.config import Settings
    from service.engine import Engine

    torch.manual_seed(0)
    model = models.build_model(models.preset("tiny", class_names=("bg", "cat", "dog", "cup", "person")))
    settings = Settings(device="cpu", max_upload_bytes=256 * 1024, max_image_pixels=MAX_PIXELS)
    app = create_app(settings)
    app.state.engine = Engine.create(model, "0" * 64, settings)
    app.state.batcher = _QueueAlwaysFull()
    app.state.ready = True
    return app


def _multipart(name: str, payload: bytes) -> bytes:
    head = f'--b\r\nContent-Disposition: form-data; name="{name}"; filename="f"\r\n\r\n'.encode()
    return head + payload + b"\r\n--b--\r\n"


async def _request(app: Any, path: str, query: bytes, body: bytes) -> int:
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # the client never disconnects
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    headers = [(b"content-type", b"multipart/form-data; boundary=b"), (b"content-length", str(len(body)).encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "root_path": "",
        "state": {},
    }
    await app(scope, receive, send)
    return status


class Harness:
    def __init__(self) -> None:
        self.app = build_app()
        self.loop = asyncio.new_event_loop()

    def __call__(self, data: bytes) -> None:
        if not data:
            return
        selector, payload = data[0] % 3, data[1:]
        if selector == 0:
            from service import codec
            from service.errors import ApiError

            try:
                codec.decode(payload, MAX_PIXELS)
            except ApiError as exc:
                assert 400 <= exc.status_code < 500, exc.status_code
            return
        if selector == 1:
            path = ("/detect", "/visualize", "/detect/batch")[len(payload) % 3]
            name = "images" if path == "/detect/batch" else "image"
            status = self.loop.run_until_complete(_request(self.app, path, b"masks=false", _multipart(name, payload)))
        else:
            query, _, body = payload.partition(b"\n\n")
            status = self.loop.run_until_complete(_request(self.app, "/detect", query[:2048], body))
        assert 400 <= status < 500 or status == 503, f"status {status}"  # 503: parsed, decoded, reached the queue


def corpus() -> list[bytes]:
    return [path.read_bytes() for path in sorted(CORPUS.iterdir()) if path.is_file()]


def _mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(4)
        if op == 0 and buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif op == 1 and buf:
            del buf[rng.randrange(len(buf)) :]
        elif op == 2:
            at = rng.randrange(len(buf) + 1)
            buf[at:at] = rng.randbytes(rng.randint(1, 16))
        elif buf:
            start = rng.randrange(len(buf))
            buf[start : start + rng.randint(1, 64)] = b""
    return bytes(buf)


def random_fuzz(runs: int, seed: int = 0) -> int:
    harness, seeds, rng = Harness(), corpus(), random.Random(seed)
    for i in range(runs):
        data = _mutate(rng.choice(seeds), rng) if i >= len(seeds) else seeds[i]
        harness(data)
    return runs


def main(argv: list[str]) -> int:
    try:
        import atheris
    except ImportError:
        atheris = None
    if atheris is None:
        runs = random_fuzz(5000)
        print(f"atheris not installed: {runs} random mutations of the corpus, 0 crashes")
        return 0
    import torch  # noqa: F401  (big and not under test: loaded before instrumentation starts)

    import models  # noqa: F401

    with atheris.instrument_imports(include=INSTRUMENTED):
        import PIL.Image
        import python_multipart  # noqa: F401

        import service.app  # noqa: F401

        PIL.Image.init()  # loads the format plugins, inside the instrumented block
    harness = Harness()
    args = [argv[0], *[a for a in argv[1:] if a != "--ci"]]
    if "--ci" in argv:  # new inputs go to a scratch dir (libFuzzer writes to the first), seeds from the corpus
        scratch = tempfile.mkdtemp(prefix="fuzz_decode_")
        args += ["-atheris_runs=5000", "-max_len=65536", "-timeout=20", f"-artifact_prefix={scratch}/", scratch]
        args.append(str(CORPUS))
    atheris.Setup(args, harness)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
