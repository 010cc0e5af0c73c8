"""Hot single-statement reads, executed straight on asyncpg.

SQLAlchemy still builds and compiles these statements (compiled once per statement shape and
cached, as its own compiled cache does), and the connection still comes out of the engine's
pool, so limits, liveness pings, pool counters and pool timeouts stay the pool's. What is left
out is SQLAlchemy's execution around each statement: a new greenlet per call (the checkout runs
in a reused one: ``sqlalchemy_internals.run_sync``), the cursor adapter and
the result machinery cost several times the statement's own round trip on a page of users
(bench/RESULTS.md).

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.engine import Compiled
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.types import TupleType

from gql_api.db.failures import ends_session
from gql_api.db.sqlalchemy_internals import cache_key, run_sync
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
    ``__getattr__`` first fails a normal lookup (an exception) and then runs Python."""
    attributes: dict[str, Any] = {"__slots__": ()}
    for column in columns:
        if column.isidentifier() and not hasattr(Row, column):
            attributes[column] = property(operator.itemgetter(column))
    return type("Row", (Row,), attributes)


@dataclass
class _Rendered:
    sql: str
    compiled: Compiled
    names: tuple[str, ...]
    processors: dict[str, Any]
    # Made from the first rows this statement returns (their column names).
    record_class: type[Row] = Row


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


def _give_back(pooled: Any, reusable: bool) -> None:
    try:
        if not reusable:
            # Cancelled mid-statement or the connection broke: it cannot go back as is.
            pooled.invalidate()
    finally:
        pooled.close()  # its slot, even when closing the connection was cut short


class Reader:
    """``fetch(statement, params)``: the statement's rows, on asyncpg or through SQLAlchemy."""

    def __init__(self, engine: AsyncEngine, *, direct: bool) -> None:
        # ``engine`` is the autocommit view of the pool when ``direct`` is off.
        self.engine = engine
        self.direct = direct
        self._compiled: dict[Any, _Rendered] = {}
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
            # Out of the engine's pool (whose checkout may ping an idle connection).
            pooled = await run_sync(self.engine.sync_engine.raw_connection)
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
                pool: Any = self.engine.sync_engine.pool
                if reusable and pool.checkedin() < pool.size():
                    pooled.close()  # into the pool's queue: nothing awaits the driver
                else:
                    # Invalidated, or the pool cannot keep it: closing awaits the driver, so
                    # in a greenlet, as the checkout.
                    await run_sync(_give_back, pooled, reusable)

    def _render(
        self, statement: ClauseElement, params: dict[str, Any] | None
    ) -> tuple[_Rendered, list[Any]]:
        key = cache_key(statement)
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
                self._compiled_sql_bytes = 0
            self._compiled[key.key] = rendered
            self._compiled_sql_bytes += len(rendered.sql)
        values: Any = rendered.compiled.construct_params(
            params, extracted_parameters=key.bindparams, escape_names=False
        )
        processors = rendered.processors
        args = [
            processors[name](values[name]) if name in processors else values[name]
            for name in rendered.names
        ]
        return rendered, args
