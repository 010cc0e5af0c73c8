"""The database: where it is (configured or embedded), the async engine and its pool, sessions.

One :class:`Database` per process. It owns the engine, the embedded server when it started one,
and the pool counters that SQLAlchemy does not keep itself (waits, closes for idle time and for
lifetime), which ``dbPoolStats`` reports.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from sqlalchemy import event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.ext.asyncio import AsyncSession

from gql_api.config import DatabaseSettings, Settings, redact_url
from gql_api.embedded import EmbeddedServer, start_embedded

log = logging.getLogger(__name__)


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


def libpq_url(url: str) -> str:
    """The URL as libpq tools (psql, pg_dump) take it."""
    parts = urlsplit(url)
    return parts._replace(scheme="postgresql").geturl()


@dataclass
class PoolCounters:
    """Pool events SQLAlchemy does not count for us."""

    opened: int = 0
    closed: int = 0
    wait_count: int = 0
    wait_duration_s: float = 0.0
    closed_max_idle_time: int = 0
    closed_max_lifetime: int = 0
    invalidated: int = 0
    _checkin_times: dict[int, float] = field(default_factory=dict)


class Database:
    """Engine, sessions and pool statistics for one PostgreSQL database."""

    def __init__(self, settings: DatabaseSettings, url: str, embedded: EmbeddedServer | None):
        self.settings = settings
        self.url = url
        self.embedded = embedded
        self.counters = PoolCounters()
        self.engine = self._create_engine(url)
        self.sessionmaker = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False, autoflush=False
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
            # PgBouncer in transaction mode: no per-connection prepared statement cache.
            connect_args["statement_cache_size"] = 0
            connect_args["prepared_statement_cache_size"] = 0
        pool_size = max(cfg.max_idle_conns, 1)
        engine = create_async_engine(
            async_url,
            pool_size=pool_size,
            max_overflow=max(cfg.max_open_conns - pool_size, 0),
            pool_recycle=int(cfg.conn_max_lifetime.total_seconds()) or -1,
            pool_timeout=cfg.pool_timeout.total_seconds(),
            pool_pre_ping=True,
            connect_args=connect_args,
            echo=cfg.log_level == "debug",
        )
        self._watch_pool(engine)
        return engine

    def _watch_pool(self, engine: AsyncEngine) -> None:
        counters = self.counters
        max_idle = self.settings.conn_max_idle_time.total_seconds()
        max_lifetime = self.settings.conn_max_lifetime.total_seconds()
        pool = engine.sync_engine.pool

        @event.listens_for(pool, "connect")
        def _connect(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
            counters.opened += 1
            record.info["opened_at"] = time.monotonic()

        @event.listens_for(pool, "checkout")
        def _checkout(dbapi_conn: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
            returned_at = record.info.get("checked_in_at")
            if max_idle and returned_at is not None and time.monotonic() - returned_at > max_idle:
                counters.closed_max_idle_time += 1
                # The pool closes this connection and hands out a fresh one.
                raise DisconnectionError("connection idle longer than conn_max_idle_time")
            opened_at = record.info.get("opened_at")
            if max_lifetime and opened_at is not None and time.monotonic() - opened_at > max_lifetime:
                counters.closed_max_lifetime += 1

        @event.listens_for(pool, "checkin")
        def _checkin(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
            record.info["checked_in_at"] = time.monotonic()

        @event.listens_for(pool, "close")
        def _close(dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
            counters.closed += 1

        @event.listens_for(pool, "invalidate")
        def _invalidate(dbapi_conn: Any, record: ConnectionPoolEntry, exc: Any) -> None:
            counters.invalidated += 1

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for one unit of work; the caller commits."""
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside a transaction: committed on success, rolled back on error."""
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def ping(self) -> float:
        """Round-trip ``SELECT 1``; returns the latency in milliseconds."""
        started = time.perf_counter()
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return (time.perf_counter() - started) * 1000

    def pool_status(self) -> dict[str, int]:
        pool: Any = self.engine.sync_engine.pool
        checked_out = int(pool.checkedout())
        idle = int(pool.checkedin())
        return {"open": checked_out + idle, "in_use": checked_out, "idle": idle}

    def describe(self) -> str:
        where = "embedded PostgreSQL" if self.embedded else "PostgreSQL"
        return f"{where} at {redact_url(self.url)}"

    async def dispose(self) -> None:
        await self.engine.dispose()

    def stop_embedded(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None
