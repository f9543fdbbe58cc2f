"""docs/security.md's claim -> test table names tests that exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENTRY = re.compile(r"`(tests/[\w/]+\.py)((?:::\w+)?)`|`::(\w+)`")


def test_every_test_the_security_doc_names_exists() -> None:
    text = (ROOT / "docs" / "security.md").read_text()
    table = text[text.index("## Claims and their tests") :]
    named: list[tuple[str, str]] = []
    current = ""
    for match in ENTRY.finditer(table):
        if match.group(1):
            current = match.group(1)
            if match.group(2):
                named.append((current, match.group(2)[2:]))
        else:
            named.append((current, match.group(3)))
    assert len(named) > 20
    for path, name in named:
        tree = ast.parse((ROOT / path).read_text())
        functions = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert name in functions, f"docs/security.md names {path}::{name}, which does not exist"
