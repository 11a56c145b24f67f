"""The SDK never imports torch (nor the model, service or trainer packages): DESIGN.md's client rule."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[2] / "client"
HEAVY = ("torch", "torchvision", "models", "service", "trainer")


def test_importing_the_sdk_and_its_cli_leaves_torch_out_of_sys_modules() -> None:
    code = (
        "import sys, maskrcnn_client, maskrcnn_client.cli, maskrcnn_client.local; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    env = {**os.environ, "PYTHONPATH": str(CLIENT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == "[]"


def test_no_module_imports_torch_or_the_server_packages_at_top_level() -> None:
    for path in sorted((CLIENT / "maskrcnn_client").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:  # module level only: local.py imports `models` inside functions, on purpose
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            bad = [n for n in names if n.split(".")[0] in HEAVY]
            assert not bad, f"{path.name} imports {bad}"


def test_the_offline_smoke_check_passes_without_torch() -> None:
    env = {**os.environ, "PYTHONPATH": str(CLIENT)}
    smoke = Path(__file__).resolve().parent / "sdk_smoke.py"
    done = subprocess.run([sys.executable, str(smoke)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "smoke check passed" in done.stdout
