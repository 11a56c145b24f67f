"""How the trainer reports bad data: `DataError` stops the run with one line; `Issues` collects what was
repaired or skipped and logs one warning line per kind of problem, naming a few of the ids involved.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger("trainer.data")
EXAMPLES = 5  # ids named per warning line


class DataError(ValueError):
    """The data cannot be used as given: the message (one line) says which file and which field or id."""


def one_line(exc: BaseException) -> str:
    """The message of `exc` as one line, also when a DataLoader worker re-raised it.

    torch re-raises a worker's exception in the main process with the worker's whole traceback as its message
    ("Caught DataError in DataLoader worker process 0.\\nOriginal Traceback ...\\n<module>.DataError: msg");
    the last line holds the original message.
    """
    text = str(exc).strip()
    if "Original Traceback" not in text:
        return text
    last = text.splitlines()[-1]
    name = type(exc).__name__
    return last.split(f"{name}: ", 1)[1] if f"{name}: " in last else last


@dataclass
class _Kind:
    label: str
    count: int = 0
    examples: list[object] = field(default_factory=list)


class Issues:
    """Problems of one file, grouped by kind: `add` while checking, `log` once at the end.

    One warning line per kind: "<source>: <what>: <n> <subject>s, e.g. <label> [<up to 5 examples>]".
    """

    def __init__(self, source: str, subject: str = "annotation") -> None:
        self.source, self.subject = source, subject
        self._kinds: dict[str, _Kind] = {}

    def add(self, what: str, example: object, label: str = "ids") -> None:
        kind = self._kinds.setdefault(what, _Kind(label))
        kind.count += 1
        if len(kind.examples) < EXAMPLES and example not in kind.examples:
            kind.examples.append(example)

    def lines(self, prefix: bool = True) -> list[str]:
        """One line per kind, "<source>: " first when `prefix`."""
        out = []
        for what, kind in self._kinds.items():
            plural = "s" if kind.count > 1 else ""
            more = "e.g. " if kind.count > len(kind.examples) else ""
            line = f"{what}: {kind.count} {self.subject}{plural}, {more}{kind.label} {kind.examples}"
            out.append(f"{self.source}: {line}" if prefix else line)
        return out

    def log(self, logger: logging.Logger = log) -> None:
        for line in self.lines():
            logger.warning(line)
