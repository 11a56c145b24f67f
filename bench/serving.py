"""Serving overhead and dynamic batching, measured over real HTTP against a real uvicorn.

1. Latency: one request at a time, HTTP end to end (upload, multipart, decode, batcher, forward, paste, RLE,
   JSON) vs the same work in-process (codec.decode + Predictor + coco_results). Overhead = HTTP / in-process - 1.
2. Throughput: 16 concurrent clients, dynamic batching (max batch size 8) vs one at a time (max batch size 1).

Same model (full-size `resnet50_fpn` with random weights, seed 0; `--model demo`, the shipped demo weights;
`--model tiny`), same photo (tests/fixtures/coffee_800x1200.jpg), score threshold 0 (up to 100 detections with
masks). Runs alternate between the two sides; medians are reported and appended to bench/RESULTS.md with the
date and machine.

    python -m bench.serving                 # full size on the CPU (a few minutes on 2 cores)
    python -m bench.serving --model demo    # the model served by default: what MASKRCNN_MAX_BATCH_SIZE should be
    python -m bench.serving --model tiny    # the tiny test model: seconds
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import torch

import models
from bench.pipeline import machine_description, publish
from models import InferenceOptions, weights
from models.inference import Predictor, coco_results
from models.postprocess import paste_masks
from service import codec
from service.config import Settings

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT / "tests" / "fixtures" / "coffee_800x1200.jpg"
DEMO = ROOT / "models" / "assets" / "demo.safetensors"
PARAMS = {"score_threshold": 0.0}


def _server(weights_path: Path, max_batch_size: int):  # -> tests' LiveServer, without importing tests/
    import socket
    import threading

    import uvicorn

    from service.app import create_app

    settings = Settings(
        weights=weights_path, device="cpu", max_batch_size=max_batch_size, queue_size=256, request_timeout_s=600
    )
    app = create_app(settings)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not app.state.ready:
        assert thread.is_alive(), "server failed to start"
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def latency(weights_path: Path, model: models.MaskRCNN, data: bytes, repeat: int) -> dict[str, list[float]]:
    """Alternating runs, in ms: in-process end to end and its forward; HTTP end to end and the server's forward.

    A pause before each run lets the other side's OpenMP threads go idle. The forward is the same work on both
    sides, so (end to end - forward) isolates what serving adds from the machine's noise on a long forward.
    """
    predictor = Predictor(model, "cpu")
    options = InferenceOptions(score_thresh=0.0)
    server, thread, url = _server(weights_path, max_batch_size=8)
    times: dict[str, list[float]] = {"local": [], "local_forward": [], "http": [], "http_forward": []}
    try:
        with httpx.Client(base_url=url, timeout=600) as client:
            client.post("/detect", files={"image": data}, params=PARAMS)  # warm both sides
            predictor([codec.decode(data, 40_000_000).pixels], options)
            for _ in range(repeat):
                time.sleep(0.3)
                start = time.perf_counter()
                image = codec.decode(data, 40_000_000).pixels
                forward = time.perf_counter()
                det = predictor.detect([image], options)[0]
                forward = time.perf_counter() - forward
                crops = paste_masks(det.masks, det.boxes, det.image_size, model.config.mask_thresh)
                results = coco_results(det, crops, model.config.class_names, model.config.category_ids)
                times["local"].append((time.perf_counter() - start) * 1e3)
                times["local_forward"].append(forward * 1e3)
                time.sleep(0.3)
                start = time.perf_counter()
                response = client.post("/detect", files={"image": data}, params=PARAMS)
                times["http"].append((time.perf_counter() - start) * 1e3)
                assert response.status_code == 200, response.text
                body = response.json()
                times["http_forward"].append(body["timing_ms"]["inference"])
                assert len(body["detections"]) == len(results)  # the same answer, in both senses
    finally:
        server.should_exit = True
        thread.join()
    return times


async def _storm(url: str, data: bytes, clients: int, requests: int) -> float:
    """Seconds for `requests` requests from `clients` concurrent clients."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=httpx.Limits(max_connections=clients)) as client:

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                response = await client.post("/detect", files={"image": data}, params=PARAMS)
                assert response.status_code == 200, response.text

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return time.perf_counter() - start


def throughput(weights_path: Path, data: bytes, max_batch_size: int, clients: int, requests: int) -> float:
    server, thread, url = _server(weights_path, max_batch_size)
    try:
        asyncio.run(_storm(url, data, min(clients, 8), min(clients, 8)))  # warm-up round
        return requests / asyncio.run(_storm(url, data, clients, requests))
    finally:
        server.should_exit = True
        thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50_fpn", choices=("resnet50_fpn", "demo", "tiny"))
    parser.add_argument("--repeat", type=int, default=9, help="latency runs per side")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=0, help="throughput requests (default: 2 or 8 x clients)")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args()
    name = args.model
    requests = args.requests or args.clients * (2 if name == "resnet50_fpn" else 8)
    torch.manual_seed(0)
    model = weights.load(DEMO) if name == "demo" else models.build_model(models.preset(name))
    data = PHOTO.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.safetensors"
        weights.save(model, path)
        times = latency(path, model, data, args.repeat)
        batched = throughput(path, data, 8, args.clients, requests)
        single = throughput(path, data, 1, args.clients, requests)
    med = {key: statistics.median(values) for key, values in times.items()}
    overhead = med["http"] / med["local"] - 1
    outside = {
        side: [t - f for t, f in zip(times[side], times[f"{side}_forward"], strict=True)] for side in ("local", "http")
    }
    added_ms = statistics.median(outside["http"]) - statistics.median(outside["local"])
    lines = [
        f"## {datetime.date.today()} · serving · {machine_description(torch.device('cpu'))}",
        "",
        f"`python -m bench.serving --model {name}`: {name} ({'trained' if name == 'demo' else 'random'} weights), "
        "photo 800x1200, "
        f"score threshold 0 (100 detections with masks); latency: medians of {args.repeat} alternating runs; "
        f"throughput: {args.clients} concurrent clients, {requests} requests. Serving overhead = what HTTP adds "
        "outside the forward (upload, multipart, batching window, JSON), measured as the median of (end to end - "
        "forward) on each side, relative to the in-process latency: the forward is the same work on both sides "
        "and carries nearly all of the machine's noise.",
        "",
        "| what | baseline | service | ratio |",
        "|---|---|---|---|",
        f"| latency, one request (in-process decode + forward + paste + RLE vs HTTP end to end) | "
        f"{med['local']:.0f} ms | {med['http']:.0f} ms | {overhead * 100:+.1f}% end to end |",
        f"| serving overhead outside the forward (forward {med['local_forward']:.0f} vs {med['http_forward']:.0f} ms) "
        f"| | +{added_ms:.0f} ms | **{added_ms / med['local'] * 100:+.1f}%** |",
        f"| throughput, {args.clients} clients (max batch 1 vs dynamic batching, max batch 8) | {single:.2f} img/s | "
        f"{batched:.2f} img/s | **{batched / single:.2f}x** |",
        "",
    ]
    publish(lines, args.results)


if __name__ == "__main__":
    main()
