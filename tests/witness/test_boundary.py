"""The witness node is its own deployable: it needs neither the service nor the client."""

from __future__ import annotations

import ast
from pathlib import Path

WITNESS = Path(__file__).resolve().parents[2] / "witness"


def test_witness_imports_neither_the_service_nor_the_client() -> None:
    for path in sorted(WITNESS.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in ("app", "client", "migrations"), (path.name, name)
