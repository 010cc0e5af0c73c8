"""Sizes stay readable: no module of the package over 300 lines, no function over 60.

Every ``.py`` file under ``gql_api/`` is parsed (not imported). A module's size is its number of
lines; a function's (methods and nested functions included) runs from its ``def`` line to its
last line, decorators excluded. Nothing is exempt: split a module or a function along a real
seam rather than raise a limit here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import gql_api

PACKAGE_DIR = Path(gql_api.__file__).parent
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60


def oversized(source: str, where: str) -> list[str]:
    """``where`` and each function of ``source`` over its limit, as ``place: n lines``."""
    found = []
    lines = len(source.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(f"{where}: {lines} lines (module, at most {MAX_MODULE_LINES})")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            size = node.end_lineno - node.lineno + 1
            if size > MAX_FUNCTION_LINES:
                found.append(
                    f"{where}:{node.lineno} {node.name}: {size} lines "
                    f"(function, at most {MAX_FUNCTION_LINES})"
                )
    return found


def test_no_module_or_function_is_too_long() -> None:
    modules = sorted(PACKAGE_DIR.rglob("*.py"))
    assert len(modules) > 40, "the walk found the package's modules"
    offenders = [
        offence
        for path in modules
        for offence in oversized(
            path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE_DIR.parent))
        )
    ]
    assert not offenders, "too long:\n" + "\n".join(offenders)


def test_the_check_can_fail() -> None:
    """Each limit is caught one line past it, and not at it."""
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES - 1))
    at_limit = f"def f():\n{body}"
    assert oversized(at_limit, "m.py") == []
    assert oversized(f"@decorated\nasync def g():\n{body}    return 0\n", "m.py") == [
        f"m.py:2 g: {MAX_FUNCTION_LINES + 1} lines (function, at most {MAX_FUNCTION_LINES})"
    ]
    nested = f"class C:\n    def method(self):\n{body.replace('    ', '        ')}        y = 1\n"
    assert [o.split(":")[1] for o in oversized(nested, "m.py")] == ["2 method"]
    assert oversized("pass\n" * MAX_MODULE_LINES, "m.py") == []
    assert oversized("pass\n" * (MAX_MODULE_LINES + 1), "m.py") == [
        f"m.py: {MAX_MODULE_LINES + 1} lines (module, at most {MAX_MODULE_LINES})"
    ]
