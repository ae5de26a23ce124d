"""Habits the codebase keeps (issue 19): small functions, or a stated reason."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 80
REASON = "Long because"


def _long_functions() -> list[tuple[str, str, int]]:
    """(file, function, lines) of the functions over MAX_LINES whose docstring, or a comment in their
    body (a click command's docstring is its --help), gives no REASON."""
    found = []
    for path in sorted((ROOT / "tfxp").rglob("*.py")):
        source = path.read_text()
        lines_of = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                body = "\n".join(lines_of[node.lineno - 1 : node.end_lineno])
                if lines > MAX_LINES and REASON not in (ast.get_docstring(node) or "") and f"# {REASON}" not in body:
                    found.append((str(path.relative_to(ROOT)), node.name, lines))
    return found


def test_no_function_over_80_lines_without_a_reason_in_its_docstring():
    """A function longer than a screen says why ("Long because ..."), or is split."""
    assert _long_functions() == []
