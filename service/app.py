"""The app factory: settings, model, batcher and metrics are built here (in the lifespan), never at import.

`create_app(settings, engine=...)` takes an engine the CLI already built (so bad weights or an unusable
device end the process with a one-line reason before uvicorn starts); without one, the lifespan loads
`settings.weights` (then a failure fails uvicorn's startup).
Warm-up runs in the background on the inference thread: /healthz answers at once, /readyz and the
inference routes answer 503 until it is done. Shutdown (uvicorn's graceful SIGTERM path) lets the batcher
finish every queued job before the inference thread stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from models.host_memory import retain_freed_memory

from . import errors, probes, routes, web
from .batcher import Batcher, Job, unavailable
from .codec import DecodeBudget
from .config import Settings
from .engine import Engine, FatalDeviceError, load_model
from .limits import BodyLimit
from .metrics import Metrics, RequestMetrics
from .request_id import RequestId

log = logging.getLogger("service")


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()
    given_engine = engine

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        retain_freed_memory()  # before the inference and decode threads exist: they share the main malloc arena
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        try:
            engine = given_engine
            if engine is None:
                model, sha256 = await asyncio.to_thread(load_model, settings)
                engine = await loop.run_in_executor(executor, Engine.create, model, sha256, settings)
            batcher = Batcher(
                _runner(app, engine),
                executor,
                max_batch_size=settings.resolved_max_batch_size(engine.device),
                max_wait_s=settings.max_batch_wait_ms / 1000,
                queue_size=settings.queue_size,
                on_batch=lambda size, depth: metrics.batch_size.observe(size),
                on_reject=lambda reason: metrics.rejections.labels(reason).inc(),
            )
            metrics.watch(engine.predictor.device, lambda: batcher.depth)
            app.state.engine, app.state.batcher = engine, batcher
            batcher.start()
            warmup = asyncio.create_task(_warm_up(app, engine, executor, metrics))
            yield
            app.state.stopping = True  # a warm-up still running must not declare the app ready any more
            app.state.ready = False
            metrics.ready.set(0)
            await batcher.close()  # uvicorn has finished in-flight requests; drain what is still queued
            await warmup
        finally:
            app.state.ready = False
            executor.shutdown(wait=True)

    app = FastAPI(
        title="Mask R-CNN service",
        summary="Instance segmentation: COCO-format detections with RLE masks",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served by probes.router, behind the API key when one is set
    )
    app.state.settings, app.state.metrics = settings, metrics
    budget = app.state.decode_budget = DecodeBudget(settings.decode_memory_bytes)
    metrics.watch_decodes(lambda: budget.in_use, lambda: budget.peak, budget.total)
    app.state.engine, app.state.batcher, app.state.ready, app.state.fatal = None, None, False, False
    app.state.stopping = False
    # The CLI replaces this with its uvicorn server's should_exit; embedded elsewhere, SIGTERM ourselves.
    app.state.request_exit = lambda: os.kill(os.getpid(), signal.SIGTERM)
    errors.install(app)
    routers = (probes.open_router, probes.router, routes.router, web.router)
    for router in routers:
        app.include_router(router)
    batch_bytes = settings.max_upload_bytes * settings.max_batch_images
    app.add_middleware(
        BodyLimit, limit_for=lambda path: batch_bytes if path == "/detect/batch" else _small(settings, path)
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(RequestMetrics, metrics=metrics, routes=[r for router in routers for r in router.routes])
    app.add_middleware(RequestId)  # outermost: every answer carries X-Request-ID
    return app


def _small(settings: Settings, path: str) -> int:
    return settings.max_upload_bytes if path in ("/detect", "/visualize") else 64 * 1024


async def _warm_up(app: FastAPI, engine: Engine, executor: ThreadPoolExecutor, metrics: Metrics) -> None:
    """One forward, then ready. A model that cannot run even that ends the process (status 70 from the CLI)."""
    try:
        await asyncio.get_running_loop().run_in_executor(executor, engine.warmup)
    except Exception as exc:
        log.critical("warm-up failed, shutting down: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        app.state.fatal = True
        app.state.request_exit()
        return
    if app.state.stopping:  # e.g. uvicorn could not bind its port: shutting down before it ever served
        return
    app.state.ready = True
    metrics.ready.set(1)
    log.info("model %s ready on %s (%s)", engine.name, engine.device, engine.predictor.precision)


def _runner(app: FastAPI, engine: Engine) -> Any:
    """engine.run, except that a broken device makes the process exit (non-zero) so its supervisor restarts it."""

    def run(jobs: list[Job]) -> list[Any]:
        try:
            return engine.run(jobs)
        except FatalDeviceError as exc:
            if not app.state.fatal:
                log.critical("device error, shutting down for a restart: %s", exc)
                app.state.fatal = True
                app.state.ready = False
                app.state.request_exit()  # uvicorn's graceful path; the CLI then exits non-zero
            return [unavailable("device_error", "the device failed; the server is restarting")] * len(jobs)

    return run
