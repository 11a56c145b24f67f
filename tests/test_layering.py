"""The direction of dependencies in DESIGN.md: models/ knows nothing of HTTP or training."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "models": {"service", "trainer", "client", "maskrcnn_client", "fastapi", "starlette", "uvicorn", "maskrcnn_cli"},
    "service": {"trainer", "maskrcnn_client"},
    "trainer": {"service", "maskrcnn_client"},
    # The SDK never imports torch; `maskrcnn detect` without --url imports `models` lazily, inside a function.
    "client/maskrcnn_client": {"torch", "torchvision", "service", "trainer"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_packages_import_only_downstream() -> None:
    for package, forbidden in FORBIDDEN.items():
        files = sorted((ROOT / package).rglob("*.py"))
        assert files, package
        for path in files:
            bad = _imports(path) & forbidden
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
