"""The `maskrcnn` console script: a thin dispatcher.

Each subcommand imports the package it needs only when it runs, so `maskrcnn --help` stays instant and the
service never pulls in the trainer.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="maskrcnn", description="Mask R-CNN instance segmentation.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in [
        ("serve", "start the HTTP service"),
        ("detect", "run the model on image files"),
        ("train", "train on COCO-format data"),
        ("evaluate", "COCOeval a model on COCO-format data"),
        ("synth", "write a synthetic COCO-format data set"),
    ]:
        sub.add_parser(name, help=help_text, add_help=False)
    args, _ = parser.parse_known_args(argv)
    print(f"maskrcnn {args.command}: not available yet in this version.", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
