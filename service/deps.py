"""FastAPI dependencies, `Dep = Annotated[T, Depends(get_t)]` style, so routes read as their signatures."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request

from .batcher import Batcher, unavailable
from .codec import DecodeBudget
from .config import Settings
from .engine import Engine
from .errors import ApiError
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


def get_decode_budget(request: Request) -> DecodeBudget:
    return request.app.state.decode_budget


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
EngineDep = Annotated[Engine, Depends(get_engine)]
BatcherDep = Annotated[Batcher, Depends(get_batcher)]
DecodeBudgetDep = Annotated[DecodeBudget, Depends(get_decode_budget)]


def get_params(
    engine: EngineDep,
    score_threshold: Annotated[
        float | None,
        Query(ge=0, le=1, description="keep detections whose score is >= this (inclusive); default: the model's"),
    ] = None,
    max_detections: Annotated[
        int | None, Query(ge=1, le=100, description="at most this many, best first; default: the model's (100)")
    ] = None,
    categories: Annotated[
        list[str] | None,
        Query(max_length=200, description="keep only these classes: names or category ids, repeated or a,b,c"),
    ] = None,
    masks: Annotated[bool, Query(description="include COCO RLE segmentations")] = True,
) -> DetectParams:
    config = engine.config
    return DetectParams(
        config.score_thresh if score_threshold is None else score_threshold,
        config.detections_per_img if max_detections is None else max_detections,
        _labels(engine, categories),
        masks,
    )


def _labels(engine: Engine, values: list[str] | None) -> frozenset[int] | None:
    """Names or category ids (repeated or comma-separated) -> contiguous labels; an unknown one -> 422."""
    if not values:
        return None
    by_name = {name: label for label, (_, name) in enumerate(engine.categories(), start=1)}
    by_id = {str(cat): label for label, (cat, _) in enumerate(engine.categories(), start=1)}
    labels = set()
    for token in (t.strip() for value in values for t in value.split(",")):
        if not token:
            continue
        label = by_name.get(token, by_id.get(token))
        if label is None:
            raise ApiError(422, "unknown_category", f"unknown category {token[:64]!r}; see GET /v1/model")
        labels.add(label)
    return frozenset(labels) or None


ParamsDep = Annotated[DetectParams, Depends(get_params)]
