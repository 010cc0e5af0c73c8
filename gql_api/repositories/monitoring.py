"""What PostgreSQL says about itself: statement statistics, backends, locks, sizes.

Every function takes a session first and returns plain rows (``RowMapping``); none writes except
:func:`create_pg_stat_statements`, and none commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from sqlalchemy import RowMapping, text
from sqlalchemy.ext.asyncio import AsyncSession

QUERY_TEXT_LIMIT = 2000
ROWS_LIMIT = 500


class StatementsState(StrEnum):
    READY = "ready"
    NOT_CREATED = "not_created"  # preloaded, but CREATE EXTENSION not run in this database
    NOT_LOADED = "not_loaded"  # not in shared_preload_libraries: needs a restart


async def pg_stat_statements_state(session: AsyncSession) -> StatementsState:
    row = (
        await session.execute(
            text(
                "SELECT current_setting('shared_preload_libraries') AS preload, "
                "EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') "
                "AS created"
            )
        )
    ).one()
    loaded = {part.strip().strip('"') for part in str(row.preload).split(",")}
    if "pg_stat_statements" not in loaded:
        return StatementsState.NOT_LOADED
    return StatementsState.READY if row.created else StatementsState.NOT_CREATED


async def create_pg_stat_statements(session: AsyncSession) -> None:
    """``CREATE EXTENSION IF NOT EXISTS pg_stat_statements`` (needs a privileged role)."""
    await session.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))


async def slow_queries(
    session: AsyncSession, *, min_mean_ms: float, limit: int
) -> Sequence[RowMapping]:
    """Statements of this database whose mean time is at least ``min_mean_ms``, slowest first."""
    result = await session.execute(
        text(
            "SELECT left(s.query, :text_limit) AS query, s.calls, "
            "s.mean_exec_time AS mean_ms, s.total_exec_time AS total_ms, s.rows, "
            "CASE WHEN s.shared_blks_hit + s.shared_blks_read > 0 "
            "THEN 100.0 * s.shared_blks_hit / (s.shared_blks_hit + s.shared_blks_read) "
            "END AS cache_hit_percent "
            "FROM pg_stat_statements s "
            "WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND s.mean_exec_time >= :min_mean_ms "
            "ORDER BY s.mean_exec_time DESC LIMIT :limit"
        ),
        {"min_mean_ms": min_mean_ms, "limit": limit, "text_limit": QUERY_TEXT_LIMIT},
    )
    return result.mappings().all()


async def activity(session: AsyncSession) -> Sequence[RowMapping]:
    """Backends of the server that are not idle (this session's own backend left out)."""
    result = await session.execute(
        text(
            "SELECT pid, datname AS database, usename AS username, application_name, "
            "host(client_addr) AS client_address, backend_type, state, wait_event_type, "
            "wait_event, backend_start, xact_start, query_start, "
            "EXTRACT(EPOCH FROM (clock_timestamp() - query_start)) * 1000 AS query_ms, "
            "left(query, :text_limit) AS query "
            "FROM pg_stat_activity "
            "WHERE state IS NOT NULL AND state <> 'idle' AND pid <> pg_backend_pid() "
            "ORDER BY query_start NULLS LAST LIMIT :limit"
        ),
        {"text_limit": QUERY_TEXT_LIMIT, "limit": ROWS_LIMIT},
    )
    return result.mappings().all()


async def ungranted_locks(session: AsyncSession) -> Sequence[RowMapping]:
    """Lock requests that are waiting, with the backends that block them."""
    result = await session.execute(
        text(
            "SELECT l.pid, l.locktype, l.mode, "
            "CASE WHEN l.database = (SELECT oid FROM pg_database "
            "WHERE datname = current_database()) THEN l.relation::regclass::text END "
            "AS relation, a.datname AS database, a.usename AS username, "
            "EXTRACT(EPOCH FROM (clock_timestamp() - a.query_start)) * 1000 AS waiting_ms, "
            "left(a.query, :text_limit) AS query, pg_blocking_pids(l.pid) AS blocked_by "
            "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE NOT l.granted ORDER BY a.query_start NULLS LAST LIMIT :limit"
        ),
        {"text_limit": QUERY_TEXT_LIMIT, "limit": ROWS_LIMIT},
    )
    return result.mappings().all()


async def connection_counts(session: AsyncSession) -> tuple[int, Sequence[RowMapping]]:
    """``max_connections`` and the client backends of the server counted by state."""
    max_connections = (
        await session.execute(text("SELECT current_setting('max_connections')::int"))
    ).scalar_one()
    result = await session.execute(
        text(
            "SELECT coalesce(state, 'unknown') AS state, count(*) AS count "
            "FROM pg_stat_activity WHERE backend_type = 'client backend' "
            "GROUP BY 1 ORDER BY 1"
        )
    )
    return int(max_connections), result.mappings().all()


async def database_size(session: AsyncSession) -> RowMapping:
    result = await session.execute(
        text(
            "SELECT current_database() AS name, "
            "pg_database_size(current_database()) AS bytes, "
            "pg_size_pretty(pg_database_size(current_database())) AS pretty"
        )
    )
    return result.mappings().one()


async def table_sizes(session: AsyncSession) -> Sequence[RowMapping]:
    """Tables of the non-system schemas, largest first, with a row estimate.

    The estimate is the planner's ``reltuples`` once the table has been analysed, the
    statistics collector's live-row count before that.
    """
    result = await session.execute(
        text(
            "SELECT n.nspname AS schema, c.relname AS name, "
            "pg_total_relation_size(c.oid) AS total_bytes, "
            "pg_relation_size(c.oid) AS table_bytes, pg_indexes_size(c.oid) AS index_bytes, "
            "CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint "
            "ELSE coalesce(s.n_live_tup, 0) END AS row_estimate "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
            "WHERE c.relkind IN ('r', 'p') "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg_toast%' "
            "ORDER BY total_bytes DESC, name LIMIT :limit"
        ),
        {"limit": ROWS_LIMIT},
    )
    return result.mappings().all()


async def count_active_sessions(session: AsyncSession) -> int:
    result = await session.execute(
        text("SELECT count(*) FROM user_sessions WHERE revoked_at IS NULL AND expires_at > now()")
    )
    return int(result.scalar_one())
