"""The batcher and engine without HTTP: loosest-options batching, OOM splitting, isolation of a bad item."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from models.options import InferenceOptions
from service.batcher import Batcher
from service.config import Settings
from service.engine import Engine, FatalDeviceError, load_model
from service.errors import ApiError
from service.schemas import DetectParams

IMAGE = torch.randint(0, 256, (3, 96, 128), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def engine(tiny_weights: Path) -> Engine:
    settings = Settings(weights=tiny_weights, device="cpu")
    model, sha = load_model(settings)
    return Engine.create(model, sha, settings)


def test_loosest_options_then_per_request_cut_equals_own_forward(engine: Engine) -> None:
    """Filtering a loose forward gives what a forward with the request's own options gives."""
    loose = engine.predictor.detect([IMAGE], InferenceOptions(score_thresh=0.0, detections_per_img=100))[0]
    for threshold, k in [(0.0, 100), (0.0, 7), (0.2, 100), (0.25, 3)]:
        params = DetectParams(threshold, k, None, True)
        own = engine.predictor.detect([IMAGE], InferenceOptions(score_thresh=threshold, detections_per_img=k))[0]
        cut = engine.postprocess(loose, params)
        assert [d["score"] for d in cut] == pytest.approx(own.scores.tolist(), abs=1e-6)
        assert [d["bbox"] for d in cut] == [
            pytest.approx([x1, y1, x2 - x1, y2 - y1], abs=1e-3) for x1, y1, x2, y2 in own.boxes.tolist()
        ]


class FakePredictor:
    """Raises CUDA out-of-memory for batches above `fits`; counts the calls."""

    def __init__(self, engine: Engine, fits: int, error: type[BaseException] = torch.cuda.OutOfMemoryError) -> None:
        self.real = engine.predictor
        self.fits, self.error, self.sizes = fits, error, []
        self.config, self.device, self.precision = self.real.config, self.real.device, self.real.precision

    def detect(self, images, options=None, masks=True):
        self.sizes.append(len(images))
        if len(images) > self.fits:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.real.detect(images, options, masks)


def _jobs(n: int) -> list[SimpleNamespace]:
    return [SimpleNamespace(image=IMAGE, params=DetectParams(0.05, 100, None, True)) for _ in range(n)]


def test_out_of_memory_splits_the_batch(engine: Engine) -> None:
    fake = FakePredictor(engine, fits=2)
    split = Engine(fake, engine.name, engine.sha256)  # type: ignore[arg-type]
    results = split.run(_jobs(8))
    assert fake.sizes == [8, 4, 2, 2, 4, 2, 2]
    assert all(not isinstance(r, BaseException) for r in results) and len(results) == 8


def test_out_of_memory_on_one_image_is_a_503(engine: Engine) -> None:
    split = Engine(FakePredictor(engine, fits=0), engine.name, engine.sha256)  # type: ignore[arg-type]
    results = split.run(_jobs(2))
    assert all(isinstance(r, ApiError) and r.status_code == 503 and r.headers["Retry-After"] for r in results)


def test_other_cuda_errors_are_fatal(engine: Engine) -> None:
    broken = Engine(FakePredictor(engine, fits=0, error=RuntimeError), engine.name, engine.sha256)  # type: ignore[arg-type]
    broken.predictor.error = lambda msg: RuntimeError("CUDA error: an illegal memory access was encountered")
    with pytest.raises(FatalDeviceError):
        broken.run(_jobs(2))


def test_a_failing_item_does_not_fail_its_batch_mates(engine: Engine) -> None:
    class OnePoisoned(FakePredictor):
        def detect(self, images, options=None, masks=True):
            if any(img.shape[1] == 1 for img in images):
                raise ValueError("boom")
            return self.real.detect(images, options, masks)

    jobs = _jobs(3)
    jobs[1].image = torch.zeros(3, 1, 64, dtype=torch.uint8)
    results = Engine(OnePoisoned(engine, 9), engine.name, engine.sha256).run(jobs)  # type: ignore[arg-type]
    assert not isinstance(results[0], BaseException) and not isinstance(results[2], BaseException)
    assert isinstance(results[1], ApiError) and results[1].status_code == 500


def test_batcher_groups_and_drains_on_close() -> None:
    calls: list[int] = []

    def run(jobs: list) -> list:
        calls.append(len(jobs))
        return [job.image for job in jobs]

    async def main() -> list:
        with ThreadPoolExecutor(1) as executor:
            batcher = Batcher(run, executor, max_batch_size=4, max_wait_s=0.05, queue_size=16)
            batcher.start()
            jobs = [batcher.new_job(torch.tensor(i), DetectParams(0, 1, None, False), 5) for i in range(10)]
            for job in jobs:
                batcher.submit([job])
            await batcher.close()  # drains everything already queued
            with pytest.raises(ApiError):
                batcher.submit([batcher.new_job(torch.tensor(0), DetectParams(0, 1, None, False), 5)])
            return [job.future.result().item() for job in jobs]

    assert asyncio.run(main()) == list(range(10))
    assert calls == [4, 4, 2]


def test_a_timed_out_request_leaves_no_job_and_no_pixels_in_the_queue() -> None:
    """Its jobs are taken out of the queue at once, not when the worker reaches them: the queue keeps no image
    that the request's memory reservation has stopped counting."""
    released = threading.Event()

    def run(jobs: list) -> list:
        assert released.wait(30)
        return [job.image for job in jobs]

    async def main() -> tuple[int, int]:
        with ThreadPoolExecutor(1) as executor:
            batcher = Batcher(run, executor, max_batch_size=1, max_wait_s=0, queue_size=16)
            batcher.start()
            busy = batcher.new_job(torch.zeros(3, 8, 8), DetectParams(0, 1, None, False), 5)
            batcher.submit([busy])  # the worker holds it
            await asyncio.sleep(0.05)
            late = [batcher.new_job(torch.zeros(3, 8, 8), DetectParams(0, 1, None, False), 0.1) for _ in range(3)]
            batcher.submit(late)
            with pytest.raises(ApiError) as timeout:
                await batcher.wait(late)
            queued = len(batcher._queue)
            released.set()
            await batcher.wait([busy])
            await batcher.close()
            return timeout.value.status_code, queued

    assert asyncio.run(main()) == (504, 0)
