"""The `maskrcnn` console script: a thin dispatcher.

Each subcommand lives in the package it belongs to (`service.cli`, `trainer.cli`, ...) as a function
`main(argv) -> int`, imported only when that subcommand runs: `maskrcnn --help` stays instant and serving
never imports the trainer.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "serve": ("service.cli", "serve", "start the HTTP service"),
    "detect": ("maskrcnn_client.cli", "detect", "detect in images: in-process, or --url for a service"),
    "train": ("trainer.cli", "train", "train on COCO-format data"),
    "evaluate": ("trainer.cli", "evaluate", "COCOeval a model on COCO-format data"),
    "synth": ("trainer.cli", "synth", "write a synthetic COCO-format data set"),
    "plot": ("trainer.cli", "plot", "draw a training run's loss and AP curves into a PNG"),
    "weights": ("models.zoo_cli", "main", "list, pull or convert pretrained checkpoints"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        lines = [f"  {name:<9} {help_text}" for name, (_, _, help_text) in COMMANDS.items()]
        asked = bool(argv) and argv[0] in ("-h", "--help")  # asked for: stdout, status 0; a usage error: stderr, 2
        print(
            "usage: maskrcnn COMMAND [options]\n\ncommands:\n" + "\n".join(lines),
            file=sys.stdout if asked else sys.stderr,
        )
        return 0 if asked else 2
    module_name, function, _ = COMMANDS[argv[0]]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(f"maskrcnn {argv[0]}: not available in this version", file=sys.stderr)
            return 2
        raise
    return int(getattr(module, function)(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
