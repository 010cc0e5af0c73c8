"""Admin queries that watch the database: pool, slow statements, backends, locks, sizes.

All of them require the admin role. Views of the server's state (``pg_stat_activity``,
``pg_locks``, ``pg_stat_statements``) are read on the primary, which is the server they describe;
``dbSize`` is a staleness-tolerant read, on a replica when one serves (sizes are the same there).
``dbPoolStats`` shows the primary's pool and, under ``replicas``, each replica's.
Byte counts and statement counts are ``Float``: GraphQL's ``Int`` is 32-bit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy.exc import DBAPIError

from gql_api.graphql.schema.context import Context
from gql_api.graphql.schema.errors import AppError, BadUserInput
from gql_api.repositories import monitoring
from gql_api.repositories.monitoring import StatementsState

MAX_SLOW_QUERIES = 100


class FeatureUnavailable(AppError):
    """The server lacks something this query needs; the message says how to enable it."""

    code = "FEATURE_UNAVAILABLE"


PG_STAT_STATEMENTS_HELP = (
    "slowQueries needs the pg_stat_statements extension: add "
    "shared_preload_libraries = 'pg_stat_statements' to postgresql.conf, restart PostgreSQL, "
    "then run CREATE EXTENSION pg_stat_statements; in this database as a superuser"
)


@strawberry.type
class PoolStats:
    engine: str = strawberry.field(description="primary, or the replica's name.")
    open_connections: int = strawberry.field(description="Connections open (in use + idle).")
    in_use: int
    idle: int
    wait_count: int = strawberry.field(description="Checkouts that waited for a connection.")
    wait_duration_ms: float
    max_idle_closed: int = strawberry.field(
        description="Closed after a second idle while max_idle_conns others were idle."
    )
    max_idle_time_closed: int = strawberry.field(description="Closed after conn_max_idle_time.")
    max_lifetime_closed: int = strawberry.field(description="Closed after conn_max_lifetime.")
    opened_total: int
    closed_total: int
    invalidated_total: int
    max_open_connections: int
    max_idle_connections: int
    conn_max_lifetime_seconds: float
    conn_max_idle_time_seconds: float
    pool_timeout_seconds: float
    replicas: list[PoolStats] = strawberry.field(
        description="Each read replica's pool (database.read_replica_urls), same figures."
    )


def _pool_stats(
    engine: str, status: dict[str, int], counters: Any, limits: dict[str, float]
) -> PoolStats:
    return PoolStats(
        engine=engine,
        open_connections=status["open"],
        in_use=status["in_use"],
        idle=status["idle"],
        wait_count=counters.wait_count,
        wait_duration_ms=round(counters.wait_duration_s * 1000, 3),
        max_idle_closed=counters.closed_max_idle,
        max_idle_time_closed=counters.closed_max_idle_time,
        max_lifetime_closed=counters.closed_max_lifetime,
        opened_total=counters.opened,
        closed_total=counters.closed,
        invalidated_total=counters.invalidated,
        max_open_connections=int(limits["max_open"]),
        max_idle_connections=int(limits["max_idle"]),
        conn_max_lifetime_seconds=limits["max_lifetime_s"],
        conn_max_idle_time_seconds=limits["max_idle_time_s"],
        pool_timeout_seconds=limits["timeout_s"],
        replicas=[],
    )


@strawberry.type
class SlowQuery:
    query: str
    calls: float
    mean_time_ms: float
    total_time_ms: float
    rows: float
    cache_hit_percent: float | None


@strawberry.type
class Backend:
    pid: int
    database: str | None
    username: str | None
    application_name: str | None
    client_address: str | None
    backend_type: str | None
    state: str | None
    wait_event_type: str | None
    wait_event: str | None
    backend_start: datetime | None
    transaction_start: datetime | None
    query_start: datetime | None
    query_ms: float | None
    query: str | None


@strawberry.type
class WaitingLock:
    pid: int | None
    lock_type: str
    mode: str
    relation: str | None
    database: str | None
    username: str | None
    waiting_ms: float | None
    query: str | None
    blocked_by: list[int]


@strawberry.type
class ConnectionStateCount:
    state: str
    count: int


@strawberry.type
class ConnectionCounts:
    total: int
    max_connections: int
    by_state: list[ConnectionStateCount]


@strawberry.type
class TableSize:
    schema: str
    name: str
    total_bytes: float
    table_bytes: float
    index_bytes: float
    row_estimate: float


@strawberry.type
class DatabaseSize:
    name: str
    bytes: float
    pretty: str
    tables: list[TableSize]


@strawberry.type
class OpsQuery:
    @strawberry.field(description="Connection pool of this process: state, counters, limits.")
    def db_pool_stats(self, info: strawberry.Info[Context, None]) -> PoolStats:
        info.context.require_admin()
        db = info.context.db
        limits = db.pool_limits()
        stats = _pool_stats("primary", db.pool_status(), db.counters, limits)
        stats.replicas = [
            _pool_stats(r.name, db.pool_status(r.engine), r.counters, limits)
            for r in db.replicas.replicas
        ]
        return stats

    @strawberry.field(description="Slowest statements by mean time, from pg_stat_statements.")
    async def slow_queries(
        self, info: strawberry.Info[Context, None], min_mean_ms: float = 1000, limit: int = 10
    ) -> list[SlowQuery]:
        info.context.require_admin()
        if min_mean_ms < 0:
            raise BadUserInput("minMeanMs must not be negative", {"minMeanMs": "must be >= 0"})
        if not 1 <= limit <= MAX_SLOW_QUERIES:
            raise BadUserInput(
                f"limit must be between 1 and {MAX_SLOW_QUERIES}",
                {"limit": f"must be 1..{MAX_SLOW_QUERIES}"},
            )
        async with info.context.db.session() as session:
            state = await monitoring.pg_stat_statements_state(session)
            if state is StatementsState.NOT_LOADED:
                raise FeatureUnavailable(PG_STAT_STATEMENTS_HELP)
            if state is StatementsState.NOT_CREATED:
                try:  # preloaded already: creating the view needs no restart
                    await monitoring.create_pg_stat_statements(session)
                    await session.commit()
                except DBAPIError:
                    await session.rollback()
                    raise FeatureUnavailable(PG_STAT_STATEMENTS_HELP) from None
            rows = await monitoring.slow_queries(session, min_mean_ms=min_mean_ms, limit=limit)
        return [
            SlowQuery(
                query=row["query"],
                calls=float(row["calls"]),
                mean_time_ms=round(float(row["mean_ms"]), 3),
                total_time_ms=round(float(row["total_ms"]), 3),
                rows=float(row["rows"]),
                cache_hit_percent=(
                    None
                    if row["cache_hit_percent"] is None
                    else round(float(row["cache_hit_percent"]), 2)
                ),
            )
            for row in rows
        ]

    @strawberry.field(description="Backends of the server that are not idle.")
    async def db_activity(self, info: strawberry.Info[Context, None]) -> list[Backend]:
        info.context.require_admin()
        async with info.context.db.session() as session:
            rows = await monitoring.activity(session)
        return [
            Backend(
                pid=row["pid"],
                database=row["database"],
                username=row["username"],
                application_name=row["application_name"],
                client_address=row["client_address"],
                backend_type=row["backend_type"],
                state=row["state"],
                wait_event_type=row["wait_event_type"],
                wait_event=row["wait_event"],
                backend_start=row["backend_start"],
                transaction_start=row["xact_start"],
                query_start=row["query_start"],
                query_ms=None if row["query_ms"] is None else round(float(row["query_ms"]), 3),
                query=row["query"],
            )
            for row in rows
        ]

    @strawberry.field(description="Lock requests not granted, with the pids that block them.")
    async def db_locks(self, info: strawberry.Info[Context, None]) -> list[WaitingLock]:
        info.context.require_admin()
        async with info.context.db.session() as session:
            rows = await monitoring.ungranted_locks(session)
        return [
            WaitingLock(
                pid=row["pid"],
                lock_type=row["locktype"],
                mode=row["mode"],
                relation=row["relation"],
                database=row["database"],
                username=row["username"],
                waiting_ms=(
                    None if row["waiting_ms"] is None else round(float(row["waiting_ms"]), 3)
                ),
                query=row["query"],
                blocked_by=list(row["blocked_by"] or []),
            )
            for row in rows
        ]

    @strawberry.field(description="Client connections to the server, counted by state.")
    async def db_connections(self, info: strawberry.Info[Context, None]) -> ConnectionCounts:
        info.context.require_admin()
        async with info.context.db.session() as session:
            max_connections, rows = await monitoring.connection_counts(session)
        by_state = [ConnectionStateCount(state=r["state"], count=int(r["count"])) for r in rows]
        return ConnectionCounts(
            total=sum(s.count for s in by_state),
            max_connections=max_connections,
            by_state=by_state,
        )

    @strawberry.field(description="Size of this database and of its tables, with row estimates.")
    async def db_size(self, info: strawberry.Info[Context, None]) -> DatabaseSize:
        info.context.require_admin()
        async with info.context.db.stale_session() as session:
            database = await monitoring.database_size(session)
            tables = await monitoring.table_sizes(session)
        return DatabaseSize(
            name=database["name"],
            bytes=float(database["bytes"]),
            pretty=database["pretty"],
            tables=[
                TableSize(
                    schema=t["schema"],
                    name=t["name"],
                    total_bytes=float(t["total_bytes"]),
                    table_bytes=float(t["table_bytes"]),
                    index_bytes=float(t["index_bytes"]),
                    row_estimate=float(t["row_estimate"]),
                )
                for t in tables
            ],
        )
