"""Prometheus metrics, one registry per app (two apps in one process, as in tests, never collide).

Requests are counted by route template (never the raw path: unbounded label values) and status; stage
latencies (decode, queue, inference, postprocess, total) and batch sizes are histograms; queue depth and
GPU memory are read at scrape time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "maskrcnn_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.stage_seconds = Histogram(
            "maskrcnn_stage_seconds", "time per request stage", ["stage"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.request_seconds = Histogram(
            "maskrcnn_request_seconds", "HTTP latency by route", ["route"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.batch_size = Histogram(
            "maskrcnn_batch_size", "images per forward pass", buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64), registry=r
        )
        self.queue_depth = Gauge("maskrcnn_queue_depth", "images waiting for the model", registry=r)
        self.rejections = Counter("maskrcnn_rejections", "requests refused, by reason", ["reason"], registry=r)
        self.ready = Gauge("maskrcnn_ready", "1 once the model is loaded and warmed up", registry=r)
        self.gpu_memory = Gauge("maskrcnn_gpu_memory_bytes", "CUDA memory of this process", ["kind"], registry=r)
        self.decode_memory = Gauge(
            "maskrcnn_decode_memory_bytes",
            "image memory reserved by requests (decoding and decoded images in flight): in_use, peak, budget",
            ["kind"],
            registry=r,
        )
        self._device: torch.device | None = None

    def watch(self, device: torch.device, depth: Callable[[], int]) -> None:
        """Read queue depth (and GPU memory on CUDA) when scraped rather than on every change."""
        self.queue_depth.set_function(depth)
        if device.type == "cuda":
            self._device = device

    def watch_decodes(self, in_use: Callable[[], int], peak: Callable[[], int], budget: int) -> None:
        """Image memory reserved now and at most so far (decoding and decoded images in flight), against the
        budget, read when scraped."""
        self.decode_memory.labels("in_use").set_function(in_use)
        self.decode_memory.labels("peak").set_function(peak)
        self.decode_memory.labels("budget").set(budget)

    def render(self) -> bytes:
        if self._device is not None:
            self.gpu_memory.labels("allocated").set(torch.cuda.memory_allocated(self._device))
            self.gpu_memory.labels("reserved").set(torch.cuda.memory_reserved(self._device))
            self.gpu_memory.labels("peak_allocated").set(torch.cuda.max_memory_allocated(self._device))
        return generate_latest(self.registry)


class RequestMetrics:
    """ASGI middleware: count every HTTP response by route template and status, and time it.

    A response sent before routing (a 413 refused on Content-Length by `limits.BodyLimit`) is labelled with
    the route its path matches in `routes`; a path that matches none is "unmatched".
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is not None and getattr(route, "path", None):
            return route.path
        for candidate in self.routes:
            if candidate.matches(scope)[0] != Match.NONE:
                return getattr(candidate, "path", "unmatched")
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = self._route(scope)
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.request_seconds.labels(route).observe(time.perf_counter() - start)
