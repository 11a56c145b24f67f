"""The inference routes: /detect, /detect/batch, /visualize. Each one: read the upload (the body cap is
enforced by `limits.BodyLimit`, multipart parsing by `multipart.UploadRoute`), decode in a worker thread within
the decode memory budget, submit to the batcher, post-process in a worker thread, answer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any, NamedTuple, TypeVar

from fastapi import APIRouter, Depends, File, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from models import Detections
from models.image import ImageHeader
from models.keypoint_names import skeleton

from . import codec, visualize
from .auth import require_api_key
from .batcher import Batcher, Job, unavailable
from .codec import DecodeBudget
from .config import Settings
from .deps import BatcherDep, DecodeBudgetDep, EngineDep, MetricsDep, ParamsDep, SettingsDep
from .engine import Engine
from .errors import ApiError
from .metrics import Metrics
from .multipart import UploadRoute
from .schemas import ERROR_RESPONSES, BatchResponse, DetectParams, DetectResponse, ImageSize, ModelSummary, Timing

router = APIRouter(
    dependencies=[Depends(require_api_key)], responses=ERROR_RESPONSES, tags=["inference"], route_class=UploadRoute
)

ImageFile = Annotated[UploadFile, File(description="JPEG, PNG, WebP or BMP")]


class Answer(NamedTuple):
    image: codec.DecodedImage
    response: DetectResponse
    detections: list[dict[str, Any]]  # COCO-style results, as in response.detections


T = TypeVar("T")


@dataclass(frozen=True)
class Pipeline:
    """One request's path: uploads -> decode -> batcher -> model -> post-process -> one Answer per image."""

    request: Request
    params: DetectParams
    engine: Engine
    batcher: Batcher
    settings: Settings
    metrics: Metrics
    budget: DecodeBudget

    async def __call__(self, files: list[UploadFile]) -> list[Answer]:
        async with self.answers(files) as answers:
            return answers

    @contextlib.asynccontextmanager
    async def answers(self, files: list[UploadFile]) -> AsyncIterator[list[Answer]]:
        """The request's answers, its images' memory held in the budget until the block ends (so that work on
        the decoded pixels after answering, such as drawing them, is inside it too)."""
        start = time.perf_counter()
        headers = await self._each(files, codec.probe)  # every header checked (4xx) before anything is reserved
        held = await self._reserve(headers, start)
        try:
            # all decoded before any is submitted: one bad file fails only its request
            decoded = await self._each(files, codec.decode)
            held.shrink(sum(header.pixel_bytes for header in headers))  # the decoded pixels stay held
            decode_s = time.perf_counter() - start
            self.metrics.stage_seconds.labels("decode").observe(decode_s)
            yield await self._infer(decoded, decode_s, start + self.settings.request_timeout_s)
        finally:
            held.release()

    async def _infer(self, decoded: list[codec.DecodedImage], decode_s: float, deadline: float) -> list[Answer]:
        """Submit, wait for the model until `deadline` (time.perf_counter seconds: the request's own timeout,
        whatever the memory wait and the decode took of it), post-process."""
        left = max(0.0, deadline - time.perf_counter())
        jobs = [self.batcher.new_job(d.pixels, self.params, left) for d in decoded]
        self.batcher.submit(jobs)
        disconnected = asyncio.ensure_future(_client_gone(self.request))
        try:
            detections = await self.batcher.wait(jobs, disconnected)
        except asyncio.CancelledError:
            if disconnected.done():  # the client left: nobody will read this; 499 as nginx logs it
                raise ApiError(499, "client_closed_request", "client closed the request") from None
            raise
        finally:
            disconnected.cancel()
        return [
            await self._answer(job, det, image, decode_s)
            for job, det, image in zip(jobs, detections, decoded, strict=True)
        ]

    async def _each(self, files: list[UploadFile], step: Callable[[bytes, int, str], T]) -> list[T]:
        """`step(bytes, max_pixels, name)` on every file in turn, in a worker thread, each file read again from
        its spooled upload (no file's bytes are kept between steps); a 4xx it raises is counted and raised."""
        out = []
        for i, upload in enumerate(files):
            await upload.seek(0)
            data = await upload.read()
            name = "image" if len(files) == 1 else f"images[{i}]"
            try:
                out.append(await run_in_threadpool(step, data, self.settings.max_image_pixels, name))
            except ApiError as exc:
                self.metrics.rejections.labels(exc.code).inc()
                raise
        return out

    async def _reserve(self, headers: list[ImageHeader], start: float) -> codec.Reservation:
        """The request's image memory (`codec.request_bytes`) from the shared budget, held until it has answered.

        Waits while other requests hold it, up to the request timeout (then 503 + Retry-After); a request
        that needs more than the whole budget gets 413 at once.
        """
        nbytes = codec.request_bytes(headers)
        if nbytes > self.budget.total:
            self.metrics.rejections.labels("images_too_large").inc()
            raise ApiError(
                413,
                "images_too_large",
                f"these {len(headers)} images need {nbytes} bytes to decode and hold, more than the server's image "
                f"memory of {self.budget.total} bytes (MASKRCNN_DECODE_MEMORY_BYTES); send fewer or smaller images "
                "per request",
            )
        try:
            return await self.budget.acquire(nbytes, start + self.settings.request_timeout_s - time.perf_counter())
        except TimeoutError:
            self.metrics.rejections.labels("decode_busy").inc()
            raise unavailable("decode_busy", "too many large images are in flight; retry later") from None

    async def _answer(self, job: Job, det: Detections, image: codec.DecodedImage, decode_s: float) -> Answer:
        """Post-process one image's detections (off the event loop) and time every stage it went through."""
        start = time.perf_counter()
        results = await run_in_threadpool(self.engine.postprocess, det, self.params)
        post_s = time.perf_counter() - start
        queue_s, infer_s = job.started - job.enqueued, job.finished - job.started
        total_s = decode_s + queue_s + infer_s + post_s
        for stage, seconds in (("queue", queue_s), ("inference", infer_s), ("postprocess", post_s), ("total", total_s)):
            self.metrics.stage_seconds.labels(stage).observe(seconds)
        timing = Timing(
            decode=decode_s * 1e3,
            queue=queue_s * 1e3,
            inference=infer_s * 1e3,
            postprocess=post_s * 1e3,
            total=total_s * 1e3,
            batch_size=job.batch_size,
        )
        engine = self.engine
        model = ModelSummary(
            name=engine.name, weights_sha256=engine.sha256, device=engine.device, precision=engine.predictor.precision
        )
        size = ImageSize(width=image.width, height=image.height)
        response = DetectResponse(model=model, image=size, detections=results, timing_ms=timing)
        return Answer(image, response, results)


def get_pipeline(
    request: Request,
    params: ParamsDep,
    engine: EngineDep,
    batcher: BatcherDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    budget: DecodeBudgetDep,
) -> Pipeline:
    return Pipeline(request, params, engine, batcher, settings, metrics, budget)


PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]


@router.post(
    "/detect",
    response_model=DetectResponse,
    response_model_exclude_none=True,
    summary="Detect and segment objects in one image",
)
async def detect(image: ImageFile, pipeline: PipelineDep) -> DetectResponse:
    (answer,) = await pipeline([image])
    return answer.response


@router.post(
    "/detect/batch",
    response_model=BatchResponse,
    response_model_exclude_none=True,
    summary="Detect in several images at once",
)
async def detect_batch(
    images: Annotated[list[UploadFile], File(description="JPEG, PNG, WebP or BMP files")],
    pipeline: PipelineDep,
    settings: SettingsDep,
) -> BatchResponse:
    if len(images) > settings.max_batch_images:
        raise ApiError(422, "too_many_images", f"at most {settings.max_batch_images} images per request")
    return BatchResponse(results=[answer.response for answer in await pipeline(images)])


@router.post(
    "/visualize",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "the image with masks, boxes and labels"}},
    summary="Draw the detections over the image (PNG)",
)
async def visualize_image(image: ImageFile, pipeline: PipelineDep) -> Response:
    async with pipeline.answers([image]) as (answer,):  # the pixels stay in the budget while drawn
        limbs = skeleton(pipeline.engine.keypoint_names())
        png = await run_in_threadpool(visualize.render, answer.image.pixels, answer.detections, limbs)
    return Response(png, media_type="image/png")


async def _client_gone(request: Request) -> None:
    """Resolves when the client disconnects (the body is already read, so the next message is the disconnect)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
