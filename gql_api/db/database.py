"""The database: the async engine and its pool, sessions, transactions and single reads.

One :class:`Database` per process. It owns the engine, the embedded server when it started one
(``gql_api.db.urls``), the pool counters (``gql_api.db.pool``), which ``dbPoolStats`` reports,
and the read replicas (``gql_api.db.replicas``).

Reads go to the primary unless the caller asks for a staleness-tolerant read
(:meth:`Database.stale_reads`, :meth:`Database.stale_session`); those go to a replica in
rotation, except after a write: within the request that wrote, and for the writing user's later
requests (on any server process) until a replica has replayed the write's WAL position, which
``read_fences`` holds (see README, "Read replicas").
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    create_async_engine,
)

from gql_api.config import DatabaseSettings, Settings, redact_url
from gql_api.db import pool as pooling
from gql_api.db.commits import CommitListener, announcing_sessionmaker
from gql_api.db.connection_budget import CheckoutQueue, ConnectionBudget
from gql_api.db.connection_lane import ConnectionLane, follow
from gql_api.db.direct_reads import Reader
from gql_api.db.embedded import EmbeddedServer
from gql_api.db.json_codec import decode_json
from gql_api.db.replicas import Replica, ReplicaSet, RequestReads, StaleReads, replica_failed
from gql_api.db.urls import asyncpg_url, resolve_url, unique_statement_name
from gql_api.repositories import replication

log = logging.getLogger(__name__)


class Database:
    """Engine, sessions and pool statistics for one PostgreSQL database."""

    def __init__(self, settings: DatabaseSettings, url: str, embedded: EmbeddedServer | None):
        self.settings = settings
        self.url = url
        self.embedded = embedded
        self.counters = pooling.PoolCounters()
        # Set on the per-request views made by for_request(); None: no per-request limit.
        self.budget: ConnectionBudget | None = None
        # Requests' checkouts wait for the pool in arrival order (gql_api.db.connection_budget).
        self.checkouts = CheckoutQueue(sum(pooling.pool_sizes(settings)))
        # Called after every checkout and return (e.g. to publish pool gauges across workers).
        self.pool_listeners: list[Callable[[], None]] = []
        self.engine = self._create_engine(url)
        # Direct reads hand their connections on to the next (gql_api.db.connection_lane).
        self.lane = ConnectionLane(pooling.lane_keep_s(settings))
        follow(self.engine, self.lane)
        self._watch_pool(self.engine)
        # Told which users every transaction committed here changed (gql_api.db.commits: the
        # session cache forgets their checks).
        self.commit_listeners: list[CommitListener] = []
        self.sessionmaker = announcing_sessionmaker(self.engine, self.commit_listeners)
        # Single-statement reads on the hot path (the token check, loaders, pages): autocommit
        # spares each a BEGIN and a ROLLBACK round trip. Same pool, same limits.
        # Not behind PgBouncer in transaction mode: there a statement's prepare and execute
        # stay on one server connection only inside a transaction.
        self.autocommit = (
            self.engine
            if settings.disable_prepared_statements
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        # The hottest of those reads skip SQLAlchemy's execution layer (gql_api.db.direct_reads).
        self.reader = Reader(
            self.autocommit, direct=not settings.disable_prepared_statements, lane=self.lane
        )
        # Streaming replicas for staleness-tolerant reads (none: those read the primary).
        self.replicas = ReplicaSet(
            [
                Replica(f"replica-{n}", replica_url, self._create_engine(replica_url), settings)
                for n, replica_url in enumerate(settings.replica_urls)
            ],
            settings,
        )
        # Set on the per-request views made by for_request().
        self.request_reads: RequestReads | None = None

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
            connect_args["prepared_statement_name_func"] = unique_statement_name
            connect_args["server_settings"] = {"application_name": "gql_api"}
        pool_size, max_overflow = pooling.pool_sizes(cfg)
        return create_async_engine(
            async_url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            # The most recently returned first: the connections in use stay few and warm, and
            # those beyond them age until close_idle_excess closes them.
            pool_use_lifo=True,
            pool_recycle=int(cfg.conn_max_lifetime.total_seconds()) or -1,
            pool_timeout=cfg.pool_timeout.total_seconds(),
            # Liveness is checked in the checkout hook below, only for connections that sat idle:
            # SQLAlchemy's pre-ping costs BEGIN + ping + ROLLBACK on every checkout.
            pool_pre_ping=False,
            connect_args=connect_args,
            # SQL is logged through the "sqlalchemy.engine" logger (gql_api.observability.logs),
            # never with its parameters: they hold password and token hashes.
            hide_parameters=True,
            json_deserializer=decode_json,
        )

    def _watch_pool(self, engine: AsyncEngine) -> None:
        pool = engine.sync_engine.pool
        pooling.watch_pool(pool, self.settings, self.counters, self.pool_listeners, self.lane)

    def for_request(self) -> Database:
        """This database as one request uses it: the same engine and pool, but at most
        ``max_conns_per_request`` connections held at once (see
        :mod:`gql_api.db.connection_budget`).
        """
        view = Database.__new__(Database)  # a shallow copy (copy.copy takes 5x as long)
        view.__dict__ = self.__dict__.copy()
        view.budget = ConnectionBudget(
            self.settings.max_conns_per_request,
            timeout_s=self.settings.pool_timeout.total_seconds(),
            queue=self.checkouts,
        )
        view.request_reads = RequestReads()
        return view

    def act_as(self, user_id: uuid.UUID | None) -> None:
        """The request's caller (or the user a sign-in just authenticated): their writes set
        their read fence, their reads respect it."""
        if self.request_reads is not None and user_id is not None:
            self.request_reads.actor_id = user_id

    async def stale_replica(self) -> Replica | None:
        """The replica a staleness-tolerant read of this request may use, or None (primary)."""
        if not self.replicas:
            return None
        state = self.request_reads
        if state is None:
            return self.replicas.pick()
        if state.wrote:
            return None  # a read after a write in the same request sees the write
        if state.actor_id is not None and not state.fence_known:
            # One primary look-up per request: the caller's last write, made by any process.
            state.fence = await replication.fence_of(self, user_id=state.actor_id)
            state.fence_known = True
        return self.replicas.pick(min_lsn=state.fence)

    def stale_reads(self) -> StaleReads:
        """Single-statement reads that tolerate a little staleness (see :class:`StaleReads`)."""
        return StaleReads(self)

    async def _record_write(self) -> None:
        state = self.request_reads
        if state is None:
            return
        state.wrote = True
        if self.replicas and state.actor_id is not None:
            # After the commit: the primary's position now covers it.
            state.fence = await replication.record_fence(self, user_id=state.actor_id)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self.budget is None:
            yield
        else:
            async with self.budget.slot():
                yield

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for one unit of work; the caller commits."""
        async with self.slot(), self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one read statement, outside any transaction."""
        async with self.slot(), self.autocommit.connect() as conn:
            yield conn

    async def fetch(self, statement: Any, params: dict[str, Any] | None = None) -> list[Any]:
        """The rows of one read statement, outside any transaction (see
        :mod:`gql_api.db.direct_reads`)."""
        if self.budget is None:
            rows: list[Any] = await self.reader.fetch(statement, params)
            return rows
        held = await self.budget.take()
        try:
            rows = await self.reader.fetch(statement, params)
        finally:
            self.budget.give_back(held)
        return rows

    @asynccontextmanager
    async def stale_session(self) -> AsyncIterator[AsyncSession]:
        """A session for read-only work that tolerates a little staleness: on a replica when
        one may serve it (see :meth:`stale_replica`), else on the primary."""
        replica = await self.stale_replica()
        session: AsyncSession | None = None
        async with self.slot():
            if replica is not None:
                session = replica.sessionmaker()
                try:
                    # One round trip before the caller's statements, so that a replica that is
                    # down (its pooled connections dead) sends us to the primary instead.
                    await session.execute(text("SELECT 1"))
                except Exception as exc:
                    await session.close()
                    session = None
                    if not replica_failed(exc):
                        raise
                    self.replicas.failed_read(replica, exc)
            if session is None:
                session = self.sessionmaker()
            async with session:
                yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside a transaction: committed on success, rolled back on error."""
        async with self.slot(), self.sessionmaker() as session, session.begin():
            yield session
        await self._record_write()

    async def ping(self) -> float:
        """Round-trip ``SELECT 1``; returns the latency in milliseconds."""
        started = time.perf_counter()
        async with self.slot(), self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return (time.perf_counter() - started) * 1000

    def pool_status(self, engine: AsyncEngine | None = None) -> dict[str, int]:
        """Open, in use and idle connections of the primary's pool (or of ``engine``'s)."""
        engine = engine or self.engine
        lane = next((r.lane for r in self.replicas.replicas if r.engine is engine), self.lane)
        return pooling.status(engine.sync_engine.pool, lane)

    def pool_limits(self) -> dict[str, float]:
        """The configured limits, as ``dbPoolStats`` reports them."""
        return pooling.limits(self.settings)

    async def close_idle_excess(self, idle_for_s: float = pooling.IDLE_EXCESS_GRACE_S) -> int:
        """Close idle connections beyond ``max_idle_conns`` (see ``gql_api.db.pool``)."""
        replicas = [(r.engine.sync_engine.pool, r.counters) for r in self.replicas.replicas]
        pools = [(self.engine.sync_engine.pool, self.counters), *replicas]
        return await pooling.close_idle_excess(pools, self.settings, idle_for_s)

    async def watch_replicas(self) -> None:
        """Check the replicas' lag and reachability until cancelled (one task per process)."""
        await self.replicas.watch(self)

    def describe(self) -> str:
        where = "embedded PostgreSQL" if self.embedded else "PostgreSQL"
        return f"{where} at {redact_url(self.url)}"

    async def dispose(self) -> None:
        await self.engine.dispose()  # which closes the lane's connections too
        # dispose() leaves a fresh pool behind; keep counting on it.
        pool = self.engine.sync_engine.pool
        pooling.time_waits(pool, self.settings, self.counters, self.pool_listeners, self.lane)
        await self.replicas.dispose()

    def stop_embedded(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None
