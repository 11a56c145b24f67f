"""`maskrcnn serve [--host --port]`: load the weights (failing fast with one line), then run uvicorn."""

from __future__ import annotations

import argparse
import logging
import sys

from . import config

EXIT_CONFIG = 2  # bad settings or weights: fix the configuration, restarting will not help
EXIT_DEVICE = 70  # the device failed while serving: a restart should recover


def serve(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="maskrcnn serve",
        description="Serve Mask R-CNN over HTTP. Configure with MASKRCNN_* environment variables (see README).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    args = parser.parse_args(argv)

    from pydantic import ValidationError

    try:
        settings = config.Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"MASKRCNN_{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" if e["loc"] else _reason(e["msg"])
            for e in exc.errors()
        )
        return _fail(f"bad configuration: {problems}")
    if settings.weights is None and not config.DEMO_WEIGHTS.exists():
        return _fail(
            f"no weights: the demo model {config.DEMO_WEIGHTS.name} is not there yet; "
            "set MASKRCNN_WEIGHTS=/path/to/weights (.safetensors or a torchvision COCO .pth)"
        )

    import uvicorn

    from models.weights import WeightsError

    from .app import create_app
    from .engine import Engine, load_model

    try:
        model, sha256 = load_model(settings)
        engine = Engine.create(model, sha256, settings)
    except WeightsError as exc:
        return _fail(str(exc))
    except (ValueError, RuntimeError) as exc:  # an unusable device or precision on this machine
        return _fail(f"cannot use device {settings.device} at {settings.precision}: {str(exc).splitlines()[0]}")
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    app = create_app(settings, engine=engine)
    uvicorn_config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(settings.request_timeout_s) + 5,
        server_header=False,  # error bodies and headers carry no versions
    )
    server = uvicorn.Server(uvicorn_config)
    app.state.request_exit = lambda: setattr(server, "should_exit", True)
    server.run()
    if app.state.fatal:
        return EXIT_DEVICE
    return 0 if server.started else EXIT_CONFIG


def _reason(message: str) -> str:
    """pydantic's "Value error, <ours>" -> "<ours>"."""
    return message.removeprefix("Value error, ")


def _fail(message: str) -> int:
    print(f"maskrcnn serve: {message}", file=sys.stderr)
    return EXIT_CONFIG
