"""`maskrcnn weights list | pull NAME | convert SRC DST [--arch ARCH]`: argument parsing over `models.zoo`.

Exit status: 0 done, 2 a refusal (unknown name, failed download, unreadable checkpoint) with one line on stderr.
"""

from __future__ import annotations

import argparse
import sys

EXIT_REFUSED = 2


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="maskrcnn weights",
        description="Pretrained checkpoints: list them, pull one into torch's cache, convert a .pth to safetensors.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the named checkpoints, their size, and whether they are cached")
    pull = commands.add_parser("pull", help="download a named checkpoint into the cache (sha256-checked)")
    pull.add_argument("name")
    pull.add_argument("--quiet", action="store_true", help="no progress bar")
    convert = commands.add_parser(
        "convert", help="rewrite a torchvision .pth, or a Detectron2 .pkl / .pth with --arch, as our .safetensors"
    )
    convert.add_argument("src")
    convert.add_argument("dst")
    convert.add_argument(
        "--arch",
        help="the architecture of a Detectron2 file: d2:<model-zoo config name> (d2:mask_rcnn_R_50_FPN_3x, "
        "d2:mask_rcnn_R_101_FPN_3x, d2:mask_rcnn_X_101_32x8d_FPN_3x, d2:mask_rcnn_R_50_C4_3x, ...) or the path "
        "of its Detectron2 config .yaml",
    )
    args = parser.parse_args(argv)

    from . import zoo
    from .weights import WeightsError

    try:
        if args.command == "list":
            print("\n".join(zoo.listing()))
        elif args.command == "pull":
            checkpoint = zoo.find(args.name)
            path = zoo.pull(checkpoint, progress=not args.quiet)
            print(f"{checkpoint.name}: {path}")
            if checkpoint.servable:
                print(f"serve it with: MASKRCNN_WEIGHTS={checkpoint.name} maskrcnn serve")
            else:
                print(f"not servable yet: {checkpoint.note}")
        else:
            dst = zoo.convert(args.src, args.dst, args.arch)
            print(f"wrote {dst} ({dst.stat().st_size / 1e6:.1f} MB)")
    except KeyError as exc:
        return _fail(str(exc.args[0]))
    except (zoo.DownloadError, WeightsError, OSError) as exc:
        return _fail(str(exc))
    return 0


def _fail(message: str) -> int:
    print(f"maskrcnn weights: {message}", file=sys.stderr)
    return EXIT_REFUSED
