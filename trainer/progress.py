"""One rule for progress bars: a tqdm bar when the stream is a terminal, nothing otherwise.

CI logs and redirected output stay free of carriage returns and bar characters; the callers that print plain
log lines (the training loop's `iter N/M` lines) keep printing them when no bar is drawn. Under DDP only rank 0
passes `enabled=True`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

TERSE = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"  # no rate, no ETA of tqdm's


class NoBar:
    """What `progress` returns off a terminal: iterates like the bar would, draws nothing."""

    def __init__(self, iterable: Iterable[Any] | None = None) -> None:
        self.iterable = iterable

    def __iter__(self) -> Iterator[Any]:
        return iter(self.iterable or ())

    def update(self, n: int = 1) -> None: ...

    def set_postfix_str(self, text: str) -> None: ...

    def set_postfix(self, **values: Any) -> None: ...

    def write(self, text: str) -> None: ...

    def close(self) -> None: ...

    def __enter__(self) -> NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_terminal(stream: IO[str] | Any) -> bool:
    """True when `stream` is an interactive terminal (a stream without `isatty` is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    initial: int = 0,
    stream: IO[str] | None = None,
    enabled: bool = True,
    bar_format: str | None = None,
) -> Any:
    """A tqdm bar over `iterable` (or counting to `total`) on `stream` (stderr by default) when it is a terminal
    and `enabled`; else a `NoBar`. Either way: iterate it, or call update / set_postfix / set_postfix_str / close.

    bar_format: tqdm's, e.g. `TERSE` to leave room for a long postfix.
    tqdm missing (it is a dependency, but a trimmed install may lack it) also gives a `NoBar`.
    """
    stream = sys.stderr if stream is None else stream
    if not (enabled and is_terminal(stream)):
        return NoBar(iterable)
    try:
        from tqdm import tqdm
    except ImportError:
        return NoBar(iterable)
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        initial=initial,
        file=stream,
        leave=True,
        bar_format=bar_format,
        **_size(stream),
    )


def _size(stream: IO[str] | Any) -> dict[str, Any]:
    """tqdm's size options: follow the terminal's width, or 80 x 24 for a terminal that reports no size (a fresh
    pseudo-terminal says 0 x 0, on which tqdm would draw nothing)."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):
        size = os.terminal_size((0, 0))
    if size.columns > 0 and size.lines > 0:
        return {"dynamic_ncols": True}
    return {"ncols": 80, "nrows": 24}


def say(text: str, stream: IO[str] | None = None) -> None:
    """Print one line to `stream` (stderr by default) without tearing a bar drawn there (tqdm.write on a terminal)."""
    stream = sys.stderr if stream is None else stream
    if is_terminal(stream):
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            tqdm.write(text, file=stream)
            return
    print(text, file=stream, flush=True)
