"""docker/smoke-test.sh is too slow for `make test` (it builds the image): here only that it parses, is
shellcheck-clean, cleans up on every exit, and that its wheel helper is importable."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "docker" / "smoke-test.sh"


def test_smoke_script_parses_as_bash() -> None:
    result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_smoke_script_is_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_smoke_script_is_strict_and_cleans_up_on_exit() -> None:
    text = SCRIPT.read_text()
    assert "set -euo pipefail" in text
    assert "trap cleanup EXIT" in text
    assert SCRIPT.stat().st_mode & 0o111, "not executable"


def test_wheel_helper_refuses_to_run_without_a_destination_and_requirements() -> None:
    result = subprocess.run([sys.executable, str(REPO / "docker" / "wheelhouse.py")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "DEST" in result.stderr
