"""DESIGN.md's direction of dependencies, for service/: it uses models/, never trainer/ or client/."""

from __future__ import annotations

import ast

from service_helpers import ROOT


def test_service_never_imports_trainer_or_client() -> None:
    for path in sorted((ROOT / "service").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            bad = {n.split(".")[0] for n in names} & {"trainer", "client", "maskrcnn_cli"}
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_importing_the_app_builds_nothing() -> None:
    """Settings and models are built by the factory, never at import time."""
    import service.app

    source = (ROOT / "service" / "app.py").read_text()
    assert "create_app(" in source and not hasattr(service.app, "app")
