"""The private SQLAlchemy APIs the service relies on, all of them, in one place.

Each exists because no public API does the job:

- :func:`cache_key`: the direct reads (``gql_api.db.direct_reads``) compile a statement once per
  shape and bind each request's values into it, as SQLAlchemy's own compiled cache does; the
  cache key is what separates a statement's shape from its values (``ClauseElement
  ._generate_cache_key``).
- :func:`own_values`: the direct reads resolve once what a statement binds itself; SQLAlchemy's
  ``construct_params`` gives it only while not insisting on the values a request must give
  (its ``_check`` argument).
- :func:`intercept_checkouts` / :func:`intercept_returns`: the pool has events after a checkout
  and before a return, none around them, so the time a checkout waits for a connection and the
  gauges after a return need the pool's ``_do_get`` / ``_do_return_conn`` (wrapped on one pool
  instance, never on the class).

- :func:`take_idle` / :func:`close_taken`: the pool closes connections beyond its size the
  moment they come back, or never; the idle ones beyond ``max_idle_conns`` are closed once they
  have sat idle a while (``gql_api.db.pool``), which needs them out of the pool's queue
  (``pool._pool``) and their slot given back (``pool._dec_overflow``).
- :func:`pool_of`: a connection kept out of the pool between direct reads
  (``gql_api.db.connection_lane``) goes back to the pool it came from, which only the fairy
  knows (``_ConnectionFairy._pool``).
- :func:`run_sync`: the direct reads take a connection out of the pool, which is synchronous code
  that may wait on the driver (a new connection, a liveness ping) through SQLAlchemy's
  ``await_``; that works only inside a greenlet marked ``__sqlalchemy_greenlet_provider__``
  whose parent awaits what it switches out. ``greenlet_spawn`` makes a new greenlet for each
  call, and starting a greenlet costs about 20 us here (a pooled checkout without it, 13 us):
  :func:`run_sync` keeps finished greenlets to run the next call in.

``tests/test_db_sqlalchemy_internals.py`` fails, naming the API, when an upgrade changes one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from greenlet import GreenletExit, getcurrent, greenlet
from sqlalchemy.pool import ConnectionPoolEntry, Pool
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.cache_key import CacheKey
from sqlalchemy.util.queue import Empty

T = TypeVar("T")


def cache_key(statement: ClauseElement) -> CacheKey:
    """The statement's shape (``.key``, hashable) and its bound values (``.bindparams``)."""
    key = statement._generate_cache_key()
    if key is None:
        raise ValueError("the statement is not cacheable (a construct without a cache key)")
    return key


def own_values(compiled: Any, extracted: Any) -> dict[str, Any]:
    """Per bind name of ``compiled``, the value the statement whose cache key's bind values are
    ``extracted`` binds itself (None for one the request must give)."""
    values: dict[str, Any] = compiled.construct_params(
        None, extracted_parameters=extracted, escape_names=False, _check=False
    )
    return values


def intercept_checkouts(pool: Pool, wrapper: Callable[[Callable[[], Any]], Any]) -> None:
    """Every checkout of ``pool`` runs ``wrapper(take)``; ``take()`` takes a connection record
    from the pool, waiting up to ``pool_timeout`` when every connection is out."""
    take: Callable[[], Any] = pool._do_get
    pool._do_get = lambda: wrapper(take)  # type: ignore[method-assign]


def intercept_returns(pool: Pool, wrapper: Callable[[Callable[[], None]], None]) -> None:
    """Every return to ``pool`` runs ``wrapper(give_back)``; ``give_back()`` puts the record
    back, or closes it when the pool already holds ``pool_size`` idle connections."""
    give_back: Callable[[Any], None] = pool._do_return_conn
    pool._do_return_conn = lambda record: wrapper(  # type: ignore[method-assign]
        lambda: give_back(record)
    )


def pool_of(pooled: Any) -> Pool:
    """The pool a checked-out connection (a pool fairy) belongs to."""
    pool: Pool = pooled._pool
    return pool


def take_idle(pool: Pool, keep: int, returned_before: float) -> ConnectionPoolEntry | None:
    """Take out of ``pool`` (a LIFO queue pool) the oldest of its idle connections beyond the
    ``keep`` most recently returned, if it came back before ``returned_before``
    (``time.monotonic()``, recorded by the checkin hook as ``info["checked_in_at"]``); None
    when there is none. No await: nothing else touches the queue meanwhile. One at a time, so
    that a close cut short (a cancellation) strands nothing. It must then go to
    :func:`close_taken`."""
    queue: Any = pool._pool  # type: ignore[attr-defined]
    idle: list[ConnectionPoolEntry] = []  # most recently returned first
    while True:
        try:
            idle.append(queue.get_nowait())
        except Empty:
            break
    taken = None
    if len(idle) > keep:
        returned = idle[-1].info.get("checked_in_at")
        if returned is not None and returned < returned_before:
            taken = idle.pop()
    for record in reversed(idle):  # back in their order: the most recent on top
        queue.put_nowait(record)
    return taken


def close_taken(pool: Pool, record: ConnectionPoolEntry) -> None:
    """Close the connection :func:`take_idle` took, and give its slot back to ``pool``, as the
    pool does for one it cannot keep (in a greenlet: closing awaits the driver)."""
    try:
        record.close()
    finally:
        pool._dec_overflow()  # type: ignore[attr-defined]


# Idle greenlets kept per thread (a greenlet runs only in the thread that made it); beyond
# this many, one that finishes is dropped (only concurrent checkouts that wait need more).
MAX_IDLE_GREENLETS = 64
_idle = threading.local()


class _Finished:
    __slots__ = ("error", "value")

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error


class _Runner(greenlet):  # type: ignore[misc]
    """A greenlet SQLAlchemy's ``await_`` accepts (the marker, the driver as parent), serving
    one call after another: what it switches out is an awaitable for its driver, or the
    call's end."""

    __sqlalchemy_greenlet_provider__ = True

    def __init__(self) -> None:
        super().__init__(self._serve, getcurrent())

    def _serve(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        while True:
            try:
                finished = _Finished(fn(*args))
            except GreenletExit:
                raise  # the runner itself is being collected
            except BaseException as exc:  # the caller's to see, in its own task
                finished = _Finished(error=exc)
            fn, args = self.parent.switch(finished)


async def run_sync(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` where SQLAlchemy's ``await_`` works, as ``greenlet_spawn`` runs it."""
    driver = getcurrent()
    idle: list[_Runner] | None = getattr(_idle, "runners", None)
    if idle is None:
        idle = _idle.runners = []
    runner = idle.pop() if idle and idle[-1].parent is driver else _Runner()
    runner.gr_context = driver.gr_context  # context variables, as greenlet_spawn passes them
    switched = runner.switch(fn, args)
    while not isinstance(switched, _Finished):
        try:
            value = await switched
        except BaseException as exc:  # cancelled, or the driver failed: fn sees it
            switched = runner.throw(exc)
        else:
            switched = runner.switch(value)
    if len(idle) < MAX_IDLE_GREENLETS and runner.parent is driver:
        idle.append(runner)
    if switched.error is not None:
        raise switched.error
    return switched.value  # type: ignore[no-any-return]
