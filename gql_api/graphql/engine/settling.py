"""Where values sit in a planned response (:class:`PlanPosition`) and how a level of pending
values is awaited (:func:`settle`), for ``gql_api.graphql.engine.plan_execution``."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterable, Awaitable, Callable
from types import CoroutineType, GeneratorType
from typing import Any

from graphql import GraphQLError
from graphql.pyutils import is_iterable

# Classes none of whose instances is awaitable (``is_pending``); a class is added on its first
# value, and the set starts again past this many (classes made at run time stay few: a row
# class per statement shape).
MAX_PLAIN_CLASSES = 1024
_plain_classes: set[type] = set()


def is_pending(value: Any) -> bool:
    """``inspect.isawaitable(value)``, decided once per class for the classes that can never
    be: a page completes a few hundred values, nearly all rows, strings and dicts, and the
    ABC check behind ``isawaitable`` costs more than the rest of completing a string."""
    cls = type(value)
    if cls in _plain_classes:
        return False
    if issubclass(cls, (CoroutineType, GeneratorType, Awaitable)) or any(
        "__class__" in vars(base)
        for base in cls.__mro__[:-1]  # a proxy: its own answer
    ):
        return inspect.isawaitable(value)  # a generator is one only with a coroutine's flag
    if len(_plain_classes) >= MAX_PLAIN_CLASSES:
        _plain_classes.clear()
    _plain_classes.add(cls)
    return False


def listed(value: Any, owner: str) -> Any:
    """A list field's value as graphql-core takes it: a list as it is, another iterable (but a
    string or a mapping) as the list of its items, an async iterable as an awaitable of that
    list (pending with its level); anything else is graphql-core's error."""
    if type(value) is list:
        return value
    if isinstance(value, AsyncIterable):
        return _collected(value)
    if not is_iterable(value):
        raise GraphQLError(f"Expected Iterable, but did not find one for field '{owner}'.")
    return list(value)


async def _collected(items: AsyncIterable[Any]) -> list[Any]:
    return [item async for item in items]


class PlanPosition:
    """Where an object or list sits in the response: its slot (``container[key]``), whether
    that slot may be null, and the position of what holds it (None for ``data``)."""

    __slots__ = ("container", "dead", "key", "nullable", "parent")

    def __init__(
        self, parent: PlanPosition | None, container: Any, key: Any, nullable: bool
    ) -> None:
        self.parent, self.container, self.key, self.nullable = parent, container, key, nullable
        self.dead = False  # made null by an error below it

    def path(self) -> list[Any]:
        keys: list[Any] = []
        position: PlanPosition | None = self
        while position is not None and position.parent is not None:
            keys.append(position.key)
            position = position.parent
        return keys[::-1]

    def null_from_below(self) -> None:
        """A null from a non-null field of this position: it makes the nearest nullable
        position up from here null (``data`` past the root), every position on the way dead."""
        position = self
        while not position.nullable and position.parent is not None:
            position.dead = True
            position = position.parent
        position.dead = True
        if position.parent is not None:
            position.container[position.key] = None

    def attached(self) -> bool:
        position: PlanPosition | None = self
        while position is not None:
            if position.dead:
                return False
            position = position.parent
        return True


async def settle(
    awaitables: list[Any],
    settled: Callable[[int, Any], None],
    root: PlanPosition,
    flush: Callable[[], None],
) -> None:
    """Hands each awaitable's value (or the exception it raised) to ``settled`` as soon as it
    is known, in the order they finish, as graphql-core completes fields, and calls ``flush``
    after each group that finished together. Once an error has made ``data`` null the rest is
    cancelled: graphql-core answers at that moment too, so the
    same error is reported, and the connections the rest hold are freed at once."""
    if len(awaitables) == 1:
        try:
            value = await awaitables[0]
        except Exception as exc:
            value = exc
        settled(0, value)
        flush()
        return
    # The loop given, not looked up per awaitable (each lookup is a getpid() system call).
    loop = asyncio.get_running_loop()
    tasks = {
        asyncio.ensure_future(awaitable, loop=loop): index
        for index, awaitable in enumerate(awaitables)
    }
    waiting = set(tasks)
    # The order the values arrive in, as graphql-core meets them: a task's done callback runs
    # the tick after it finished, in the order they finished. A task that finished in the very
    # tick this wakes in has not run its callback yet: those come last, in selection order.
    arrived: dict[asyncio.Future[Any], None] = {}
    taken: set[asyncio.Future[Any]] = set()

    def arrive(task: asyncio.Future[Any]) -> None:
        if task not in taken:
            arrived[task] = None

    for task in tasks:
        task.add_done_callback(arrive)
    try:
        while waiting and not root.dead:
            done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            order = list(arrived)
            arrived.clear()
            late = done.difference(order)
            order += sorted(late, key=tasks.__getitem__)
            taken |= late
            for task in order:
                if task.cancelled():
                    continue
                exception = task.exception()  # retrieved even when no longer wanted
                if not root.dead:
                    settled(tasks[task], task.result() if exception is None else exception)
            flush()
    finally:
        for task in waiting:
            task.cancel()
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)


def close(awaitable: Any) -> bool:
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()  # a coroutine never awaited: no "never awaited" warning
    return False
