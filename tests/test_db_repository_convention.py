"""One convention for every repository function (gql_api/repositories/__init__.py): the first
parameter is where the statement runs (an ``AsyncSession``, or a ``RowSource`` for one
autocommit read) and every other argument is keyword-only. Read from the signatures, so a new
function that strays fails here."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

import gql_api.repositories as package
from gql_api.repositories.row_source import RowSource

WHERE_STATEMENTS_RUN = (AsyncSession, RowSource)


def repository_functions() -> list[tuple[str, Callable[..., Any]]]:
    found = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for name, function in inspect.getmembers(module, inspect.iscoroutinefunction):
            if function.__module__ == module.__name__ and not name.startswith("_"):
                found.append((f"{info.name}.{name}", function))
    return found


def strays(function: Callable[..., Any]) -> list[str]:
    """What in this function's signature breaks the convention (empty: it keeps it)."""
    hints = inspect.get_annotations(function, eval_str=True)
    first, *rest = inspect.signature(function).parameters.values()
    problems = []
    if hints.get(first.name) not in WHERE_STATEMENTS_RUN:
        problems.append(f"first parameter {first.name}: {hints.get(first.name)}")
    problems += [
        f"{parameter.name} is not keyword-only"
        for parameter in rest
        if parameter.kind is not inspect.Parameter.KEYWORD_ONLY
    ]
    return problems


def test_every_repository_function_keeps_the_convention() -> None:
    functions = repository_functions()
    assert len(functions) > 50, "the walk found the repositories"
    assert {name: strays(f) for name, f in functions if strays(f)} == {}


def test_the_check_sees_a_function_that_strays() -> None:
    async def positional(session: AsyncSession, user_id: int) -> None: ...

    async def engine_first(db: object, *, user_id: int) -> None: ...

    async def keeps_it(db: RowSource, *, user_id: int) -> None: ...

    assert strays(positional) == ["user_id is not keyword-only"]
    assert strays(engine_first) == ["first parameter db: <class 'object'>"]
    assert strays(keeps_it) == []
