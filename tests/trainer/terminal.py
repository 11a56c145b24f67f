"""Run a command the way a person or a CI job would: under a pseudo-terminal, or with its output piped."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BAR_MARKS = ("\r", "%|", "█")  # what a drawn tqdm bar leaves in the output


def maskrcnn(*args: str) -> list[str]:
    """The argv of `maskrcnn ARGS...` with this interpreter."""
    return [sys.executable, "-m", "maskrcnn_cli", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TQDM_DISABLE", None)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def in_terminal(argv: list[str], timeout: float = 120) -> tuple[int, str]:
    """(exit status, everything written to stdout and stderr) with both attached to a fresh pseudo-terminal."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, cwd=ROOT, env=_env(), stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child's end is closed
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
    return proc.wait(timeout=timeout), b"".join(chunks).decode(errors="replace")


def with_pipes(argv: list[str], timeout: float = 120) -> tuple[int, str]:
    """(exit status, stdout + stderr) with both piped, as in CI or `... > log 2>&1`."""
    done = subprocess.run(argv, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout + done.stderr
