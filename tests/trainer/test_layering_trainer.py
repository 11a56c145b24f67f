"""DESIGN.md's direction of dependencies for trainer/: it uses models/, never the service or the client."""

from __future__ import annotations

import ast
from pathlib import Path

TRAINER = Path(__file__).resolve().parents[2] / "trainer"
FORBIDDEN = {"service", "client", "fastapi", "starlette", "uvicorn", "maskrcnn_cli"}


def test_trainer_never_imports_the_service() -> None:
    files = sorted(TRAINER.glob("*.py"))
    assert files
    for path in files:
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        assert not names & FORBIDDEN, f"{path.name} imports {sorted(names & FORBIDDEN)}"
