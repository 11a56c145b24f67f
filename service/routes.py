"""The inference routes: /detect, /detect/batch, /visualize. Each one: read the upload (the body cap is
enforced by `limits.BodyLimit`), decode in a worker thread, submit to the batcher, post-process in a worker
thread, answer."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from . import codec, visualize
from .auth import require_api_key
from .deps import BatcherDep, EngineDep, MetricsDep, ParamsDep, SettingsDep
from .errors import ApiError
from .schemas import ERROR_RESPONSES, BatchResponse, DetectResponse, ImageSize, ModelSummary, Timing

router = APIRouter(dependencies=[Depends(require_api_key)], responses=ERROR_RESPONSES, tags=["inference"])

ImageFile = Annotated[UploadFile, File(description="JPEG, PNG, WebP or BMP")]


@router.post(
    "/detect",
    response_model=DetectResponse,
    response_model_exclude_none=True,
    summary="Detect and segment objects in one image",
)
async def detect(
    request: Request,
    image: ImageFile,
    params: ParamsDep,
    engine: EngineDep,
    batcher: BatcherDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> DetectResponse:
    decoded, decode_s = await _decode([image], settings.max_image_pixels, metrics)
    ((response, _),) = await _infer(request, decoded, decode_s, params, engine, batcher, settings, metrics)
    return response


@router.post(
    "/detect/batch",
    response_model=BatchResponse,
    response_model_exclude_none=True,
    summary="Detect in several images at once",
)
async def detect_batch(
    request: Request,
    images: Annotated[list[UploadFile], File(description="JPEG, PNG, WebP or BMP files")],
    params: ParamsDep,
    engine: EngineDep,
    batcher: BatcherDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> BatchResponse:
    if len(images) > settings.max_batch_images:
        raise ApiError(422, "too_many_images", f"at most {settings.max_batch_images} images per request")
    decoded, decode_s = await _decode(images, settings.max_image_pixels, metrics)
    results = await _infer(request, decoded, decode_s, params, engine, batcher, settings, metrics)
    return BatchResponse(results=[response for response, _ in results])


@router.post(
    "/visualize",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "the image with masks, boxes and labels"}},
    summary="Draw the detections over the image (PNG)",
)
async def visualize_image(
    request: Request,
    image: ImageFile,
    params: ParamsDep,
    engine: EngineDep,
    batcher: BatcherDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> Response:
    decoded, decode_s = await _decode([image], settings.max_image_pixels, metrics)
    ((_, detections),) = await _infer(request, decoded, decode_s, params, engine, batcher, settings, metrics)
    png = await run_in_threadpool(visualize.render, decoded[0].pixels, detections)
    return Response(png, media_type="image/png")


async def _decode(
    files: list[UploadFile], max_pixels: int, metrics: MetricsDep
) -> tuple[list[codec.DecodedImage], float]:
    """All files decoded (off the event loop) before any is submitted: one bad file fails only its request."""
    start = time.perf_counter()
    decoded = []
    for i, upload in enumerate(files):
        data = await upload.read()
        name = "image" if len(files) == 1 else f"images[{i}]"
        try:
            decoded.append(await run_in_threadpool(codec.decode, data, max_pixels, name))
        except ApiError as exc:
            metrics.rejections.labels(exc.code).inc()
            raise
    elapsed = time.perf_counter() - start
    metrics.stage_seconds.labels("decode").observe(elapsed)
    return decoded, elapsed


async def _infer(
    request: Request,
    decoded: list[codec.DecodedImage],
    decode_s: float,
    params: ParamsDep,
    engine: EngineDep,
    batcher: BatcherDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> list[tuple[DetectResponse, list[dict[str, Any]]]]:
    jobs = [batcher.new_job(d.pixels, params, settings.request_timeout_s) for d in decoded]
    try:
        for job in jobs:
            batcher.submit(job)
    except ApiError:
        for job in jobs:
            job.future.cancel()
        raise
    disconnected = asyncio.ensure_future(_client_gone(request))
    try:
        detections = await batcher.wait(jobs, disconnected)
    except asyncio.CancelledError:
        if disconnected.done():  # the client left: nobody will read this; 499 as nginx logs it
            raise ApiError(499, "client_closed_request", "client closed the request") from None
        raise
    finally:
        disconnected.cancel()
    out = []
    summary = ModelSummary(
        name=engine.name, weights_sha256=engine.sha256, device=engine.device, precision=engine.predictor.precision
    )
    for job, det, image in zip(jobs, detections, decoded, strict=True):
        start = time.perf_counter()
        results = await run_in_threadpool(engine.postprocess, det, params)
        post_s = time.perf_counter() - start
        queue_s, infer_s = job.started - job.enqueued, job.finished - job.started
        total_s = decode_s + queue_s + infer_s + post_s
        for stage, seconds in (("queue", queue_s), ("inference", infer_s), ("postprocess", post_s), ("total", total_s)):
            metrics.stage_seconds.labels(stage).observe(seconds)
        timing = Timing(
            decode=decode_s * 1e3,
            queue=queue_s * 1e3,
            inference=infer_s * 1e3,
            postprocess=post_s * 1e3,
            total=total_s * 1e3,
            batch_size=job.batch_size,
        )
        response = DetectResponse(model=summary, image=ImageSize(width=image.width, height=image.height),
                                  detections=results, timing_ms=timing)  # fmt: skip
        out.append((response, results))
    return out


async def _client_gone(request: Request) -> None:
    """Resolves when the client disconnects (the body is already read, so the next message is the disconnect)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
