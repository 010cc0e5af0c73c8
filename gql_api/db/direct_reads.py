"""Hot single-statement reads, executed straight on asyncpg.

SQLAlchemy still builds and compiles these statements (compiled once per statement shape and
cached, as its own compiled cache does), and the connection still comes out of the engine's
pool, so limits, liveness pings, pool counters and pool timeouts stay the pool's. What is left
out is SQLAlchemy's execution around each statement: a new greenlet per call (the checkout runs
in a reused one: ``sqlalchemy_internals.run_sync``), the cursor adapter and
the result machinery cost several times the statement's own round trip on a page of users
(bench/RESULTS.md). Between two reads the connection does not go back to the pool at all: the
next read takes it (``gql_api.db.connection_lane``, which keeps the pool's rules).

Rows are asyncpg records that also read as attributes (``row.email``), like SQLAlchemy's rows,
so the code that consumes them does not care which path produced them. The connection's type
codecs are the ones SQLAlchemy's dialect installed (JSON decoded, INET as text), so values are
the same on both paths.

Behind PgBouncer in transaction mode (``disable_prepared_statements``) asyncpg's prepare and
execute could land on two server connections, so there these reads go through SQLAlchemy.
"""

from __future__ import annotations

import logging
import operator
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.engine import Compiled
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.types import TupleType

from gql_api.db.connection_lane import ConnectionLane, return_to_pool
from gql_api.db.failures import ends_session
from gql_api.db.sqlalchemy_internals import cache_key, own_values, run_sync
from gql_api.observability import tracing

# Statements are logged where SQLAlchemy logs its own (gql_api.observability.logs sets its
# level), never with their parameters: they hold token and password hashes.
sql_log = logging.getLogger("sqlalchemy.engine.Engine")

# Distinct statement shapes are few (the filters and orders of a users page, the selections a
# relation's JSON is written for); beyond this many, or this much SQL text, the cache starts
# again rather than grow.
MAX_COMPILED = 512
MAX_COMPILED_SQL_BYTES = 4 * 1024 * 1024


class Row(asyncpg.Record):
    """An asyncpg record whose columns also read as attributes."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def row_class(columns: Sequence[str]) -> type[Row]:
    """A :class:`Row` whose columns are properties: an attribute read stays in C, where
    ``__getattr__`` first fails a normal lookup (an exception) and then runs Python. Each reads
    its column by position (the statement's records all have these columns in this order): a
    read by name searches the record's names, 40% slower over a page."""
    attributes: dict[str, Any] = {"__slots__": ()}
    for index, column in enumerate(columns):
        if column.isidentifier() and not hasattr(Row, column) and column not in attributes:
            attributes[column] = property(operator.itemgetter(index))
    return type("Row", (Row,), attributes)


@dataclass
class _Rendered:
    sql: str
    compiled: Compiled
    names: tuple[str, ...]
    processors: dict[str, Any]
    # Made from the first rows this statement returns (their column names).
    record_class: type[Row] = Row


@dataclass(frozen=True)
class _Bound:
    """One statement object's rendering, and per positional parameter where its value comes
    from: the request's ``params`` (by the bind's key, or its compiled name) or, failing that,
    the value the statement binds itself (``_REQUIRED`` when it binds none). ``slots`` is None
    when a value is computed per execution (``bindparam(callable_=...)``): SQLAlchemy then
    binds every read."""

    rendered: _Rendered
    extracted: Sequence[Any]  # the statement's own bind values, as its cache key holds them
    slots: tuple[tuple[str, str, Any, Any], ...] | None  # name, key, own value, processor

    def args(self, params: dict[str, Any] | None) -> list[Any]:
        if self.slots is None:
            return self._bound_by_sqlalchemy(params)
        args = []
        for name, key, own, process in self.slots:
            if params and key in params:
                value = params[key]
            elif params and name in params:
                value = params[name]
            elif own is _REQUIRED:
                return self._bound_by_sqlalchemy(params)  # which raises, naming the parameter
            else:
                value = own
            args.append(value if process is None else process(value))
        return args

    def _bound_by_sqlalchemy(self, params: dict[str, Any] | None) -> list[Any]:
        values: Any = self.rendered.compiled.construct_params(
            params, extracted_parameters=self.extracted, escape_names=False
        )
        processors = self.rendered.processors
        return [
            processors[name](values[name]) if name in processors else values[name]
            for name in self.rendered.names
        ]


_REQUIRED = object()


def _bound(rendered: _Rendered, extracted: Sequence[Any]) -> _Bound:
    """Where each of the statement's parameters comes from, worked out once."""
    compiled: Any = rendered.compiled
    binds = {name: bind for bind, name in compiled.bind_names.items()}
    if any(bind.callable is not None for bind in (*extracted, *binds.values())):
        return _Bound(rendered, extracted, None)
    own = own_values(compiled, extracted)
    slots = tuple(
        (
            name,
            binds[name].key,
            _REQUIRED if binds[name].required else own[name],
            rendered.processors.get(name),
        )
        for name in rendered.names
    )
    return _Bound(rendered, extracted, slots)


def bind_processors(compiled: Compiled, names: Sequence[str]) -> dict[str, Any]:
    """Per parameter name, how the dialect converts its value for the driver (None: as is),
    through the types' public ``dialect_impl(...).bind_processor(...)``."""
    dialect = compiled.dialect
    processors: dict[str, Any] = {}
    for name in names:
        type_ = compiled.binds[name].type  # type: ignore[attr-defined]
        if isinstance(type_, TupleType):
            raise ValueError("tuple parameters are not supported here; bind each element")
        processor = type_.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            processors[name] = processor
    return processors


class Reader:
    """``fetch(statement, params)``: the statement's rows, on asyncpg or through SQLAlchemy."""

    def __init__(self, engine: AsyncEngine, *, direct: bool, lane: ConnectionLane) -> None:
        # ``engine`` is the autocommit view of the pool when ``direct`` is off.
        self.engine = engine
        self.direct = direct
        self.lane = lane  # connections between direct reads, out of ``engine``'s pool
        self._compiled: dict[Any, _Rendered] = {}
        # Per statement object (a repository builds each of its statements once and reuses
        # it): what ``_render`` derives from it. Hashing its cache key (a nested tuple as long
        # as the statement) and binding its values through SQLAlchemy took about an eighth of
        # the CPU of a relation's read (py-spy, a page of users).
        self._bound: weakref.WeakKeyDictionary[ClauseElement, _Bound] = weakref.WeakKeyDictionary()
        self._compiled_sql_bytes = 0  # their text (a compiled form holds a few times as much)
        # Called with each statement's text before it is sent (tests count statements with it).
        self.listeners: list[Callable[[str], None]] = []

    @property
    def kept_sql_bytes(self) -> int:
        """The text of the statements kept compiled (bounded by MAX_COMPILED_SQL_BYTES)."""
        return self._compiled_sql_bytes

    async def fetch(self, statement: ClauseElement, params: dict[str, Any] | None = None) -> Any:
        if not self.direct:
            async with self.engine.connect() as conn:
                return (await conn.execute(statement, params)).all()  # type: ignore[call-overload]
        rendered, args = self._render(statement, params)
        sql = rendered.sql
        if sql_log.isEnabledFor(logging.INFO):
            sql_log.info("%s [direct]", sql)
        for listener in self.listeners:
            listener(sql)
        with tracing.statement_span(sql, self.engine):  # a no-op unless tracing is on
            kept = self.lane.take()  # the connection a read before this one used, if any
            if kept is None:
                # Out of the engine's pool (whose checkout may ping an idle connection).
                pooled = await run_sync(self.engine.sync_engine.raw_connection)
                since = time.monotonic()
            else:
                pooled, since = kept
            reusable = False
            try:
                connection: Any = pooled.driver_connection
                rows = await connection.fetch(sql, *args, record_class=rendered.record_class)
                reusable = True
                if rows and rendered.record_class is Row:
                    rendered.record_class = row_class(list(rows[0].keys()))
                return rows
            except asyncpg.PostgresError as error:
                # The server refused the statement: the connection is fine, unless the error
                # ended the session (FATAL: shutdown, crash recovery, termination), after which
                # no ReadyForQuery comes and asyncpg's protocol never returns to idle ("another
                # operation is in progress" for whoever gets the connection next).
                reusable = not connection.is_closed() and not ends_session(error)
                raise
            finally:
                if reusable:
                    self.lane.keep(pooled, since)  # for the next read (gql_api.db.connection_lane)
                else:  # cancelled mid-statement, or the connection broke
                    await return_to_pool(pooled, reusable=False)

    def _render(
        self, statement: ClauseElement, params: dict[str, Any] | None
    ) -> tuple[_Rendered, list[Any]]:
        bound = self._bound.get(statement)
        if bound is None:
            key = cache_key(statement)
            bound = _bound(self._rendering(statement, key), key.bindparams)
            if len(self._bound) >= MAX_COMPILED:
                self._bound.clear()
            self._bound[statement] = bound
        return bound.rendered, bound.args(params)

    def _rendering(self, statement: ClauseElement, key: Any) -> _Rendered:
        rendered = self._compiled.get(key.key)
        if rendered is None:
            compiled = statement.compile(dialect=self.engine.dialect, cache_key=key)
            if "POSTCOMPILE" in compiled.string:
                raise ValueError("expanding parameters are not supported here; use ANY(array)")
            names = tuple(compiled.positiontup or ())  # type: ignore[attr-defined]
            rendered = _Rendered(
                sql=compiled.string,
                compiled=compiled,
                names=names,
                processors=bind_processors(compiled, names),
            )
            if (
                len(self._compiled) >= MAX_COMPILED
                or self._compiled_sql_bytes + len(rendered.sql) > MAX_COMPILED_SQL_BYTES
            ):
                self._compiled.clear()
                self._bound.clear()
                self._compiled_sql_bytes = 0
            self._compiled[key.key] = rendered
            self._compiled_sql_bytes += len(rendered.sql)
        return rendered
