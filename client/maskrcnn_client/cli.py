"""`maskrcnn detect PATH...`: detect in image files, write COCO results (+ overlays), one summary line.

With --url it sends each image to a running service through the SDK; without, it runs the model in-process
(the `maskrcnn` package: --weights, or the demo model). Either way every image gives a `DetectResult`.
Writes to --out (default ./detections): detections.json (COCO results, each with image_id), images.json (a
COCO dataset skeleton they load into: `COCO("images.json").loadRes("detections.json")`), and with --overlay
one `<stem>.overlay.png` per image. An image the model or the server refuses (not an image, too large, ...)
is skipped with one line on stderr and the run goes on: exit status 1 when some were skipped, 2 when all were.
Bad input for the run as a whole (no such file, server unreachable, a wrong key) prints one line and exits 2.

The `maskrcnn-client` console script (`main`) is the same over HTTP only: it needs --url.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .errors import MaskRCNNError
from .output import CocoWriter
from .paths import InputError, expand
from .results import Category, DetectResult


def _parser(prog: str, local: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Detect and segment objects in images.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders of images, or globs")
    parser.add_argument("--url", help="the service's URL" + ("; without it the model runs in-process" if local else ""))
    parser.add_argument("--api-key", default=os.environ.get("MASKRCNN_API_KEY"), help="default $MASKRCNN_API_KEY")
    parser.add_argument("--out", type=Path, default=Path("detections"), help="output folder (default ./detections)")
    parser.add_argument("--overlay", action="store_true", help="also write <stem>.overlay.png per image")
    parser.add_argument("--score-threshold", type=float, help="0..1, inclusive (default the model's)")
    parser.add_argument("--max-detections", type=int, help="1..100 per image (default the model's, 100)")
    parser.add_argument("--categories", nargs="+", help="names or category ids to keep (or comma-separated)")
    parser.add_argument("--recursive", action="store_true", help="look into subfolders of folder PATHs")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per image over HTTP, retries included")
    if local:
        parser.add_argument("--weights", type=Path, help="weights file for in-process runs (default: demo model)")
        parser.add_argument("--device", default="cpu", help="device for in-process runs (cpu, cuda, cuda:N)")
    return parser


def _progress(paths: list[Path]) -> Iterator[Path]:
    """A tqdm bar on stderr when it is a terminal and there are several images; silence otherwise."""
    if len(paths) > 1 and sys.stderr.isatty():
        try:
            from tqdm import tqdm
        except ImportError:
            return iter(paths)
        return iter(tqdm(paths, unit="image", file=sys.stderr))
    return iter(paths)


class Skipped(Exception):
    """Some images were refused and skipped; the others' results were written (the message says where)."""


def _refused(exc: Exception) -> bool:
    """An error about one image (the server or the model refuses it), not about the whole run."""
    if isinstance(exc, MaskRCNNError):
        return exc.status is not None and 400 <= exc.status < 500 and exc.status not in (401, 403)
    return isinstance(exc, ValueError)  # in-process: models.image.ImageError


def _run(args: argparse.Namespace, detect_one: Callable[[Path], DetectResult], categories: list[Category]) -> str:
    """The summary line; raises Skipped (some refused) or InputError (all refused, or a run-wide failure)."""
    paths = expand(args.paths, args.recursive)
    writer = CocoWriter(args.out)
    overlays, skipped = 0, 0
    for path in _progress(paths):
        try:
            result = detect_one(path)
        except (MaskRCNNError, ValueError) as exc:
            if not _refused(exc):
                raise InputError(f"{path}: {exc}") from None
            skipped += 1
            print(f"{args.prog}: skipped {path}: {exc}", file=sys.stderr)
            continue
        writer.add(path, result)
        if args.overlay:
            args.out.mkdir(parents=True, exist_ok=True)
            result.overlay(path).save(writer.overlay_path(path))
            overlays += 1
    if skipped == len(paths):
        raise InputError(f"no image could be read ({skipped} skipped)")
    detections, images = writer.write(categories)
    extra = f", {overlays} overlays" if args.overlay else ""
    summary = f"{len(paths) - skipped} images, {len(writer.detections)} detections -> {detections}, {images}{extra}"
    if skipped:
        raise Skipped(f"{summary}; {skipped} skipped")
    return summary


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "score_threshold": args.score_threshold,
        "max_detections": args.max_detections,
        "categories": args.categories,
    }


def _over_http(args: argparse.Namespace) -> str:
    from .client import Client

    with Client(args.url, api_key=args.api_key, timeout=args.timeout) as client:
        categories = client.model().classes
        return _run(args, lambda path: client.detect(path, **_options(args)), categories)


def _in_process(args: argparse.Namespace) -> str:
    from .local import LocalDetector

    detector = LocalDetector(args.weights, args.device)
    detector.labels(args.categories)  # an unknown category fails before any image runs
    return _run(args, lambda path: detector.detect(path, **_options(args)), detector.categories())


def _main(argv: list[str], prog: str, local: bool) -> int:
    args = _parser(prog, local).parse_args(argv)
    args.prog = prog
    if not args.url and not local:
        print(
            f"{prog}: in-process detection needs the `maskrcnn` package (maskrcnn detect); pass --url URL",
            file=sys.stderr,
        )
        return 2
    try:
        summary = _over_http(args) if args.url else _in_process(args)
    except Skipped as partial:
        print(f"{prog}: {partial}")
        return 1
    except (InputError, MaskRCNNError, ImportError, OSError, ValueError) as exc:
        # ValueError covers the model package's ImageError and WeightsError: bad input, one line.
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    print(f"{prog}: {summary}")
    return 0


def detect(argv: list[str]) -> int:
    """`maskrcnn detect` (the dispatcher's entry): in-process without --url, HTTP with it. Returns the exit
    status: 0; 1 when some images were refused and skipped; 2 on bad input (or when every image was refused)."""
    return _main(argv, "maskrcnn detect", local=True)


def main(argv: list[str] | None = None) -> int:
    """The `maskrcnn-client` console script: `maskrcnn-client [detect] PATH... --url URL` (HTTP only)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["detect"]:
        argv = argv[1:]
    return _main(argv, "maskrcnn-client", local=False)


if __name__ == "__main__":
    sys.exit(main())
