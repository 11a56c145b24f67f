"""Operational routes: liveness, readiness, model card, a sample image, Prometheus metrics, OpenAPI and its docs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from prometheus_client import CONTENT_TYPE_LATEST

from .auth import require_api_key
from .batcher import unavailable
from .deps import EngineDep, MetricsDep, SettingsDep
from .schemas import ERROR_RESPONSES, Category, ModelInfo, Status

# One `maskrcnn synth` image (seed 7, image 4; palette PNG) on which the demo model finds its shapes.
SAMPLE_IMAGE = Path(__file__).resolve().parent / "static" / "sample.png"
DEMO_DESCRIPTION = (
    "the demo model: detects four synthetic shapes (circle, square, triangle, star), trained on `maskrcnn synth` "
    "images; for real objects serve COCO weights: `maskrcnn weights pull maskrcnn_resnet50_fpn` then "
    "`MASKRCNN_WEIGHTS=maskrcnn_resnet50_fpn maskrcnn serve`"
)

open_router = APIRouter(tags=["probes"])
router = APIRouter(dependencies=[Depends(require_api_key)], responses={401: ERROR_RESPONSES[401]})


@open_router.get("/healthz", response_model=Status, summary="Liveness: the process answers")
async def healthz() -> Status:
    return Status(status="ok")


@open_router.get(
    "/readyz", response_model=Status, responses={503: ERROR_RESPONSES[503]}, summary="Model loaded and warmed up"
)
async def readyz(request: Request) -> Status:
    if not request.app.state.ready:
        raise unavailable("not_ready", "the model is still loading")
    return Status(status="ready")


@router.get(
    "/v1/model", response_model=ModelInfo, responses={503: ERROR_RESPONSES[503]}, tags=["model"], summary="Model card"
)
async def model_info(engine: EngineDep, settings: SettingsDep) -> ModelInfo:
    demo = settings.is_demo()
    return ModelInfo(
        name=engine.name,
        description=DEMO_DESCRIPTION if demo else describe(engine.config),
        demo=demo,
        architecture=engine.config.to_dict(),
        classes=[Category(id=cat, name=name) for cat, name in engine.categories()],
        keypoints=list(engine.keypoint_names()),
        device=engine.device,
        precision=engine.predictor.precision,
        weights_sha256=engine.sha256,
        max_batch_size=settings.resolved_max_batch_size(engine.device),
    )


@router.get(
    "/v1/sample",
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}}, "description": "a synthetic shapes image to try"}},
    tags=["model"],
    summary="A sample image to try the demo model on",
)
async def sample() -> FileResponse:
    return FileResponse(SAMPLE_IMAGE, media_type="image/png", headers={"Cache-Control": "max-age=3600"})


def describe(config: Any) -> str:
    """'Mask R-CNN, resnet50 FPN (v1), 80 classes' (or C4, C5) from the ModelConfig in the weights file."""
    names = config.class_names[1:] if config.class_names else ()
    classes = sum(1 for name in names if name != "N/A") if names else config.num_classes - 1
    return f"Mask R-CNN, {config.backbone} {config.features.upper()} ({_heads(config)}), {classes} classes"


def _heads(config: Any) -> str:
    """v1 or v2 for torchvision's head layouts (RPN conv depth and box head), else the two fields."""
    layouts = {(1, "mlp"): "v1", (2, "conv_fc"): "v2"}
    key = (config.rpn_conv_depth, config.box_head)
    return layouts.get(key, f"rpn_conv_depth={key[0]}, box_head={key[1]}")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}, "description": "Prometheus text format"}},
    tags=["probes"],
    summary="Prometheus metrics",
)
async def metrics_route(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request) -> dict[str, Any]:
    return request.app.openapi()


@router.get("/docs", include_in_schema=False)
async def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{request.app.title} - docs")
