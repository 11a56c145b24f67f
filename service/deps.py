"""FastAPI dependencies, `Dep = Annotated[T, Depends(get_t)]` style, so routes read as their signatures."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from .batcher import Batcher, unavailable
from .config import Settings
from .engine import Engine
from .metrics import Metrics
from .schemas import DetectParams


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def get_engine(request: Request) -> Engine:
    """The engine once loaded and warmed up; 503 + Retry-After before."""
    engine = request.app.state.engine
    if engine is None or not request.app.state.ready:
        request.app.state.metrics.rejections.labels("not_ready").inc()
        raise unavailable("not_ready", "the model is still loading")
    return engine


def get_batcher(request: Request) -> Batcher:
    return request.app.state.batcher


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
EngineDep = Annotated[Engine, Depends(get_engine)]
BatcherDep = Annotated[Batcher, Depends(get_batcher)]


def get_params(
    engine: EngineDep,
    score_threshold: Annotated[
        float | None, Query(ge=0, le=1, description="keep detections scoring at least this; default: the model's")
    ] = None,
    max_detections: Annotated[int, Query(ge=1, le=100, description="at most this many, best first")] = 100,
    categories: Annotated[
        list[str] | None,
        Query(max_length=200, description="keep only these classes: names or category ids, repeated or a,b,c"),
    ] = None,
    masks: Annotated[bool, Query(description="include COCO RLE segmentations")] = True,
) -> DetectParams:
    threshold = engine.config.score_thresh if score_threshold is None else score_threshold
    return DetectParams(threshold, max_detections, engine.resolve_categories(categories), masks)


ParamsDep = Annotated[DetectParams, Depends(get_params)]
