"""Layers point down: nothing below the GraphQL layer imports it.

Every module of the package is parsed (not imported), and each of its imports, top-level or
inside a function, absolute or relative, is resolved to a module name. Only the GraphQL layer
itself and the modules above it (the app factory, the web package, the command line) may name
``gql_api.graphql``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import gql_api

PACKAGE_DIR = Path(gql_api.__file__).parent
# Above the GraphQL layer: they wire it into HTTP and the command line.
ALLOWED = ("gql_api.graphql", "gql_api.web.app", "gql_api.web", "gql_api.cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(source: str, *, package: str) -> set[str]:
    """Every module an import statement in ``source`` names, relative imports resolved
    against ``package`` (the package the module lives in)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            # `from gql_api import graphql` names the package through an alias.
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def imports_of(path: Path) -> set[str]:
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return imported_modules(path.read_text(encoding="utf-8"), package=package)


def is_graphql(module: str) -> bool:
    return module == "gql_api.graphql" or module.startswith("gql_api.graphql.")


def test_nothing_below_the_graphql_layer_imports_it() -> None:
    modules = sorted(PACKAGE_DIR.rglob("*.py"))
    assert len(modules) > 40, "the walk found the package's modules"
    upward = {
        module_name(path): sorted(filter(is_graphql, imports_of(path)))
        for path in modules
        if not module_name(path).startswith(ALLOWED)
    }
    assert {name: found for name, found in upward.items() if found} == {}


def test_the_walk_sees_every_form_of_import() -> None:
    """The check above can fail: each way of spelling the import is caught."""
    spellings = [
        "import gql_api.graphql.schema.errors",
        "from gql_api.graphql.schema.errors import NotFound",
        "from gql_api import graphql",
        "from ..graphql import masking",
        "def later():\n    from ..graphql.masking import classify\n",
    ]
    for source in spellings:
        assert any(map(is_graphql, imported_modules(source, package="gql_api.auth"))), source
    assert not any(map(is_graphql, imports_of(PACKAGE_DIR / "auth" / "current.py")))
    # One level up from gql_api.auth is gql_api, not gql_api.graphql.
    assert not any(map(is_graphql, imported_modules("from .. import db", package="gql_api.auth")))


# The domain and the operations hold no SQL: they call the repositories (gql_api.repositories),
# and name SQLAlchemy only for the session type they pass on.
SQL_FREE = ("gql_api.auth", "gql_api.users", "gql_api.ops")
SESSION_TYPES_ONLY = {"sqlalchemy.ext.asyncio", "sqlalchemy.ext.asyncio.AsyncSession"}


def test_the_domain_and_the_operations_build_no_sql() -> None:
    builders = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if module_name(path).startswith(SQL_FREE):
            sql = {
                name
                for name in imports_of(path)
                if name.split(".")[0] == "sqlalchemy" and name not in SESSION_TYPES_ONLY
            }
            if sql:
                builders[module_name(path)] = sorted(sql)
    assert builders == {}
