"""The database: where it is (configured or embedded), the async engine and its pool, sessions.

One :class:`Database` per process. It owns the engine, the embedded server when it started one,
and the pool counters that SQLAlchemy does not keep itself (waits, closes for idle time and for
lifetime), which ``dbPoolStats`` reports.
"""

from __future__ import annotations

import copy
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from sqlalchemy import event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from gql_api.config import DatabaseSettings, Settings, redact_url
from gql_api.connection_budget import ConnectionBudget
from gql_api.direct_reads import Reader
from gql_api.embedded import EmbeddedServer, start_embedded
from gql_api.sqlalchemy_internals import intercept_checkouts, intercept_returns

log = logging.getLogger(__name__)

# A pooled connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_S = 1.0


def resolve_url(settings: DatabaseSettings) -> tuple[str, EmbeddedServer | None]:
    """The server's ``postgresql://`` URL, starting the embedded server when none is configured."""
    url = settings.server_url()
    if url is not None:
        return url, None
    server = start_embedded(settings.data_dir, settings.database)
    return server.url(settings.database), server


def asyncpg_url(url: str) -> tuple[str, dict[str, Any]]:
    """A SQLAlchemy asyncpg URL and the connect arguments its query string stood for.

    libpq's ``sslmode`` becomes asyncpg's ``ssl`` argument; ``host`` (a unix socket directory)
    and ``port`` stay in the query, where the asyncpg dialect reads them.
    """
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    connect_args: dict[str, Any] = {}
    sslmode = query.pop("sslmode", None)
    if sslmode and sslmode != "disable":
        connect_args["ssl"] = sslmode
    scheme = "postgresql+asyncpg"
    return parts._replace(scheme=scheme, query=urlencode(query)).geturl(), connect_args


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


def libpq_url(url: str) -> str:
    """The URL as libpq tools (psql, pg_dump) take it."""
    parts = urlsplit(url)
    return parts._replace(scheme="postgresql").geturl()


def pool_sizes(settings: DatabaseSettings) -> tuple[int, int]:
    """The pool's ``pool_size`` (idle connections kept) and ``max_overflow`` (opened beyond it
    under load, closed on return): together at most ``max_open_conns``."""
    pool_size = max(settings.max_idle_conns, 1)
    return pool_size, max(settings.max_open_conns - pool_size, 0)


@dataclass
class PoolCounters:
    """Pool events SQLAlchemy does not count for us (cumulative since the engine was made).

    ``wait_count``/``wait_duration_s``: checkouts that found the pool at capacity and had to
    wait for a connection to come back (like Go's ``DBStats.WaitCount``/``WaitDuration``).
    ``closed_max_idle``: connections closed on return because the pool already kept
    ``max_idle_conns`` idle ones.
    """

    opened: int = 0
    closed: int = 0
    wait_count: int = 0
    wait_duration_s: float = 0.0
    closed_max_idle: int = 0
    closed_max_idle_time: int = 0
    closed_max_lifetime: int = 0
    invalidated: int = 0


class Database:
    """Engine, sessions and pool statistics for one PostgreSQL database."""

    def __init__(self, settings: DatabaseSettings, url: str, embedded: EmbeddedServer | None):
        self.settings = settings
        self.url = url
        self.embedded = embedded
        self.counters = PoolCounters()
        # Set on the per-request views made by for_request(); None: no per-request limit.
        self.budget: ConnectionBudget | None = None
        # Called after every checkout and return (e.g. to publish pool gauges across workers).
        self.pool_listeners: list[Callable[[], None]] = []
        self.engine = self._create_engine(url)
        self._watch_pool(self.engine)
        self.sessionmaker = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False, autoflush=False
        )
        # Single-statement reads on the hot path (the token check, loaders, pages): autocommit
        # spares each a BEGIN and a ROLLBACK round trip. Same pool, same limits.
        # Not behind PgBouncer in transaction mode: there a statement's prepare and execute
        # stay on one server connection only inside a transaction.
        self.autocommit = (
            self.engine
            if settings.disable_prepared_statements
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        # The hottest of those reads skip SQLAlchemy's execution layer (see gql_api.direct_reads).
        self.reader = Reader(self.autocommit, direct=not settings.disable_prepared_statements)
        # Read-only work may go to a replica; without one it shares the primary's engine.
        self.read_engine = (
            self._create_engine(settings.read_replica_url)
            if settings.read_replica_url
            else self.engine
        )
        self.read_sessionmaker = (
            async_sessionmaker(
                self.read_engine, class_=AsyncSession, expire_on_commit=False, autoflush=False
            )
            if self.read_engine is not self.engine
            else self.sessionmaker
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        url, embedded = resolve_url(settings.database)
        return cls(settings.database, url, embedded)

    def _create_engine(self, url: str) -> AsyncEngine:
        cfg = self.settings
        async_url, connect_args = asyncpg_url(url)
        statement_ms = int(cfg.statement_timeout.total_seconds() * 1000)
        connect_args.update(
            timeout=cfg.connect_timeout.total_seconds(),
            server_settings={
                "application_name": "gql_api",
                "statement_timeout": str(statement_ms),
                # A transaction left open by a crashed request must not hold locks for ever.
                "idle_in_transaction_session_timeout": str(max(statement_ms * 2, 60_000)),
            },
        )
        if cfg.disable_prepared_statements:
            # PgBouncer in transaction mode hands each transaction any server connection, so:
            # no statement caches, unique names for the statements SQLAlchemy still prepares
            # (inside the transaction that uses them), and no startup parameters PgBouncer
            # refuses: set statement_timeout on the role or database instead (see README).
            connect_args["statement_cache_size"] = 0
            connect_args["prepared_statement_cache_size"] = 0
            connect_args["prepared_statement_name_func"] = _unique_statement_name
            connect_args["server_settings"] = {"application_name": "gql_api"}
        pool_size, max_overflow = pool_sizes(cfg)
        engine = create_async_engine(
            async_url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_recycle=int(cfg.conn_max_lifetime.total_seconds()) or -1,
            pool_timeout=cfg.pool_timeout.total_seconds(),
            # Liveness is checked in the checkout hook below, only for connections that sat idle:
            # SQLAlchemy's pre-ping costs BEGIN + ping + ROLLBACK on every checkout.
            pool_pre_ping=False,
            connect_args=connect_args,
            # SQL is logged through the "sqlalchemy.engine" logger (see gql_api.logs) and never
            # with its parameters: they hold password and token hashes.
            hide_parameters=True,
        )
        return engine

    def _watch_pool(self, engine: AsyncEngine) -> None:
        counters = self.counters
        max_idle = self.settings.conn_max_idle_time.total_seconds()
        max_lifetime = self.settings.conn_max_lifetime.total_seconds()
        pool = engine.sync_engine.pool
        self._time_waits(pool)

        @event.listens_for(pool, "connect")
        def _connect(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
            counters.opened += 1
            record.info["opened_at"] = time.monotonic()

        @event.listens_for(pool, "checkout")
        def _checkout(dbapi_conn: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
            returned_at = record.info.get("checked_in_at")
            if max_idle and returned_at is not None and time.monotonic() - returned_at > max_idle:
                counters.closed_max_idle_time += 1
                record.info["idle_expired"] = True
                # The pool closes this connection and hands out a fresh one.
                raise DisconnectionError("connection idle longer than conn_max_idle_time")
            if returned_at is not None and time.monotonic() - returned_at > PING_AFTER_IDLE_S:
                # A connection in steady use is alive; one that sat idle may have been cut
                # (server restart, network): ping it, and let the pool replace it if dead.
                try:
                    dbapi_conn.ping()
                except Exception as exc:
                    raise DisconnectionError("connection failed its liveness ping") from exc

        @event.listens_for(pool, "checkin")
        def _checkin(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
            record.info["checked_in_at"] = time.monotonic()

        @event.listens_for(pool, "close")
        def _close(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
            counters.closed += 1
            # pool_recycle closes a connection past conn_max_lifetime at its next checkout.
            started = getattr(record, "starttime", 0)
            if record.info.pop("idle_expired", False):
                return
            if max_lifetime and started and time.time() - started > max_lifetime:
                counters.closed_max_lifetime += 1

        @event.listens_for(pool, "invalidate")
        def _invalidate(dbapi_conn: Any, record: ConnectionPoolEntry, exc: Any) -> None:
            counters.invalidated += 1

    def _time_waits(self, pool: Any) -> None:
        """Count checkouts that had to wait, and overflow connections closed on return.

        The pool has no event before a checkout, so its checkouts and returns are intercepted
        on this instance (``gql_api.sqlalchemy_internals``; ``dispose()`` makes a new pool and
        intercepts it again). Its state is read through its public counters.
        """
        counters = self.counters
        listeners = self.pool_listeners
        _pool_size, max_overflow = pool_sizes(self.settings)

        def timed_checkout(take: Callable[[], Any]) -> Any:
            # At capacity: every connection is out and no overflow is left, so this will wait.
            saturated = pool.checkedin() == 0 and pool.overflow() >= max_overflow
            started = time.perf_counter() if saturated else 0.0
            try:
                return take()
            finally:
                if saturated:
                    counters.wait_count += 1
                    counters.wait_duration_s += time.perf_counter() - started
                for listener in listeners:
                    listener()

        def counted_return(give_back: Callable[[], None]) -> None:
            if pool.checkedin() >= pool.size():
                counters.closed_max_idle += 1  # the pool closes what it cannot keep
            give_back()
            for listener in listeners:
                listener()

        intercept_checkouts(pool, timed_checkout)
        intercept_returns(pool, counted_return)

    def for_request(self) -> Database:
        """This database as one request uses it: the same engine and pool, but at most
        ``max_conns_per_request`` connections held at once (see :mod:`gql_api.connection_budget`).
        """
        view = copy.copy(self)
        view.budget = ConnectionBudget(
            self.settings.max_conns_per_request,
            timeout_s=self.settings.pool_timeout.total_seconds(),
        )
        return view

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        if self.budget is None:
            yield
        else:
            async with self.budget.slot():
                yield

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for one unit of work; the caller commits."""
        async with self._slot(), self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one read statement, outside any transaction."""
        async with self._slot(), self.autocommit.connect() as conn:
            yield conn

    async def fetch(self, statement: Any, params: dict[str, Any] | None = None) -> list[Any]:
        """The rows of one read statement, outside any transaction (see
        :mod:`gql_api.direct_reads`)."""
        if self.budget is None:
            rows: list[Any] = await self.reader.fetch(statement, params)
            return rows
        async with self.budget.slot():
            rows = await self.reader.fetch(statement, params)
            return rows

    @asynccontextmanager
    async def read_session(self) -> AsyncIterator[AsyncSession]:
        """A session for read-only work: on the read replica when one is configured.

        A replica lags its primary a little; use it only where slightly stale data is fine.
        """
        async with self._slot(), self.read_sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside a transaction: committed on success, rolled back on error."""
        async with self._slot(), self.sessionmaker() as session, session.begin():
            yield session

    async def ping(self) -> float:
        """Round-trip ``SELECT 1``; returns the latency in milliseconds."""
        started = time.perf_counter()
        async with self._slot(), self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return (time.perf_counter() - started) * 1000

    def pool_status(self) -> dict[str, int]:
        pool: Any = self.engine.sync_engine.pool
        checked_out = int(pool.checkedout())
        idle = int(pool.checkedin())
        return {"open": checked_out + idle, "in_use": checked_out, "idle": idle}

    def pool_limits(self) -> dict[str, float]:
        """The configured limits, as ``dbPoolStats`` reports them."""
        cfg = self.settings
        return {
            "max_open": cfg.max_open_conns,
            "max_idle": max(cfg.max_idle_conns, 1),
            "max_lifetime_s": cfg.conn_max_lifetime.total_seconds(),
            "max_idle_time_s": cfg.conn_max_idle_time.total_seconds(),
            "timeout_s": cfg.pool_timeout.total_seconds(),
        }

    def describe(self) -> str:
        where = "embedded PostgreSQL" if self.embedded else "PostgreSQL"
        return f"{where} at {redact_url(self.url)}"

    async def dispose(self) -> None:
        await self.engine.dispose()
        # dispose() leaves a fresh pool behind; keep counting on it.
        self._time_waits(self.engine.sync_engine.pool)
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()

    def stop_embedded(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None
