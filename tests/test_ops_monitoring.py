"""Admin database monitoring queries against a real PostgreSQL: real values for admins,
FORBIDDEN for users."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest
from sqlalchemy import text

from gql_api.db import Database
from tests.conftest import GraphQLClient, error_codes, insert_user, make_settings

QUERIES = {
    "dbPoolStats": "{ dbPoolStats { openConnections inUse idle waitCount } }",
    "slowQueries": "{ slowQueries { query } }",
    "dbActivity": "{ dbActivity { pid } }",
    "dbLocks": "{ dbLocks { pid } }",
    "dbConnections": "{ dbConnections { total } }",
    "dbSize": "{ dbSize { bytes } }",
}


@pytest.mark.parametrize("field", sorted(QUERIES))
async def test_ops_queries_are_forbidden_to_users(
    gql: GraphQLClient, user_token: str, field: str
) -> None:
    body = await gql(QUERIES[field], token=user_token)
    assert error_codes(body) == ["FORBIDDEN"], body
    assert body["data"] is None


@pytest.mark.parametrize("field", ["dbPoolStats", "dbSize"])
async def test_ops_queries_need_a_signed_in_caller(gql: GraphQLClient, field: str) -> None:
    assert error_codes(await gql(QUERIES[field])) == ["UNAUTHENTICATED"]


async def test_pool_stats_report_the_pool_and_its_limits(
    gql: GraphQLClient, admin_token: str
) -> None:
    body = await gql(
        "{ dbPoolStats { openConnections inUse idle waitCount waitDurationMs maxIdleClosed "
        "maxIdleTimeClosed maxLifetimeClosed openedTotal maxOpenConnections "
        "maxIdleConnections connMaxLifetimeSeconds connMaxIdleTimeSeconds poolTimeoutSeconds } }",
        token=admin_token,
    )
    assert "errors" not in body, body
    stats = body["data"]["dbPoolStats"]
    # make_settings: max_open_conns 20, max_idle_conns 5, defaults for the durations.
    assert stats["maxOpenConnections"] == 20
    assert stats["maxIdleConnections"] == 5
    assert stats["connMaxLifetimeSeconds"] == 1800
    assert stats["connMaxIdleTimeSeconds"] == 300
    assert stats["poolTimeoutSeconds"] == 10
    assert stats["openConnections"] >= 1  # this very request authenticated through the pool
    assert stats["openConnections"] == stats["inUse"] + stats["idle"]
    assert stats["openedTotal"] >= stats["openConnections"]


async def test_pool_counts_waits(database_url: str) -> None:
    """One connection at most: a second checkout waits for the first to come back."""
    settings = make_settings(
        database_url, database={"max_open_conns": 1, "max_idle_conns": 1, "pool_timeout": "5s"}
    )
    db = Database(settings.database, database_url, None)
    events: list[str] = []
    asking = asyncio.Event()
    try:
        async with db.engine.connect() as first:
            await first.execute(text("SELECT 1"))

            async def second() -> None:
                asking.set()
                async with db.engine.connect() as conn:
                    events.append("second got a connection")
                    await conn.execute(text("SELECT 1"))

            waiting = asyncio.create_task(second())
            await asyncio.wait_for(asking.wait(), timeout=30)
            # Let the loop run until the second checkout would have been served by a free pool.
            for _ in range(50):
                await asyncio.sleep(0)
            assert not waiting.done()
            events.append("first returned its connection")
        await asyncio.wait_for(waiting, timeout=30)
        assert events == ["first returned its connection", "second got a connection"]
        assert db.counters.wait_count == 1
        assert db.counters.wait_duration_s > 0
        await db.ping()  # a free connection: no wait
        assert db.counters.wait_count == 1
    finally:
        await db.dispose()


async def test_pool_closes_connections_idle_too_long(database_url: str) -> None:
    settings = make_settings(database_url, database={"conn_max_idle_time": "500ms"})
    db = Database(settings.database, database_url, None)
    try:
        await db.ping()
        await db.ping()  # reused at once
        assert (db.counters.opened, db.counters.closed_max_idle_time) == (1, 0)
        await asyncio.sleep(0.7)
        await db.ping()
        assert db.counters.closed_max_idle_time == 1
        assert db.counters.closed_max_lifetime == 0
        assert db.counters.opened == 2
        assert db.pool_status() == {"open": 1, "in_use": 0, "idle": 1}
    finally:
        await db.dispose()


async def test_pool_closes_connections_past_their_lifetime(database_url: str) -> None:
    settings = make_settings(database_url, database={"conn_max_lifetime": "1s"})
    db = Database(settings.database, database_url, None)
    try:
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            await asyncio.sleep(1.2)
        await db.ping()
        assert db.counters.closed_max_lifetime == 1
        assert db.counters.closed_max_idle_time == 0
        assert db.counters.opened == 2
    finally:
        await db.dispose()


async def test_pool_counts_connections_closed_beyond_max_idle(database_url: str) -> None:
    settings = make_settings(database_url, database={"max_open_conns": 3, "max_idle_conns": 1})
    db = Database(settings.database, database_url, None)
    try:
        async with db.engine.connect() as a, db.engine.connect() as b:
            await a.execute(text("SELECT 1"))
            await b.execute(text("SELECT 1"))
        # Kept when returned (wanted again soon under load), closed once idle.
        assert db.counters.closed_max_idle == 0 and db.pool_status()["idle"] == 2
        assert await db.close_idle_excess(idle_for_s=0) == 1
        assert db.counters.closed_max_idle == 1
        assert db.pool_status() == {"open": 1, "in_use": 0, "idle": 1}
    finally:
        await db.dispose()


async def _preloaded(db: Database) -> bool:
    async with db.engine.connect() as conn:
        preload = (await conn.execute(text("SHOW shared_preload_libraries"))).scalar_one()
    return "pg_stat_statements" in preload


async def test_slow_queries_sees_a_slow_statement_or_explains_how_to_enable(
    gql: GraphQLClient, admin_token: str, db: Database
) -> None:
    async with db.engine.connect() as conn:
        # A statement of its own shape: pg_stat_statements folds every "SELECT pg_sleep($1)"
        # of the run (column aliases included) into one entry, whose mean shorter sleeps
        # elsewhere would dilute.
        await conn.execute(text("SELECT pg_sleep(0.3) FROM (SELECT 1) AS slow_query_probe"))
    body = await gql(
        "{ slowQueries(minMeanMs: 200, limit: 100) "
        "{ query calls meanTimeMs totalTimeMs rows cacheHitPercent } }",
        token=admin_token,
    )
    if not await _preloaded(db):
        # e.g. a stock PostgreSQL 15: the answer says exactly what to change.
        assert error_codes(body) == ["FEATURE_UNAVAILABLE"], body
        message = body["errors"][0]["message"]
        assert "shared_preload_libraries = 'pg_stat_statements'" in message
        assert "CREATE EXTENSION pg_stat_statements" in message
        return
    assert "errors" not in body, body
    rows = body["data"]["slowQueries"]
    sleeps = [r for r in rows if "slow_query_probe" in r["query"]]
    assert sleeps, rows
    assert sleeps[0]["meanTimeMs"] >= 200
    assert sleeps[0]["calls"] >= 1
    assert sleeps[0]["totalTimeMs"] >= sleeps[0]["meanTimeMs"]
    assert all(r["meanTimeMs"] >= 200 for r in rows)
    # The default threshold (1s) leaves a 0.3s statement out.
    default = await gql("{ slowQueries { query } }", token=admin_token)
    assert not [r for r in default["data"]["slowQueries"] if "slow_query_probe" in r["query"]]


async def test_slow_queries_checks_its_arguments(gql: GraphQLClient, admin_token: str) -> None:
    for args in ("limit: 0", "limit: 1000", "minMeanMs: -1"):
        body = await gql(f"{{ slowQueries({args}) {{ query }} }}", token=admin_token)
        assert error_codes(body) == ["BAD_USER_INPUT"], (args, body)


@contextlib.asynccontextmanager
async def _raw(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url, server_settings={"application_name": "ops-test"})
    try:
        yield conn
    finally:
        await conn.close()


async def _until_backend(url: str, pid: int, condition: str, timeout: float = 30.0) -> None:
    """Poll pg_stat_activity until backend ``pid`` meets ``condition`` (no guessed sleeps)."""
    async with _raw(url) as observer:
        deadline = asyncio.get_running_loop().time() + timeout
        while not await observer.fetchval(
            f"SELECT count(*) = 1 FROM pg_stat_activity WHERE pid = $1 AND {condition}", pid
        ):
            assert asyncio.get_running_loop().time() < deadline, f"backend {pid}: {condition}"
            await asyncio.sleep(0.02)


async def test_db_activity_shows_a_running_statement(
    gql: GraphQLClient, admin_token: str, database_url: str
) -> None:
    async with _raw(database_url) as conn:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        # Long enough to outlast any slow request below; cancelled as soon as it has been seen.
        sleeper = asyncio.create_task(conn.execute("SELECT pg_sleep(60)"))
        running = "state = 'active' AND now() - query_start > '100ms'"
        await _until_backend(database_url, pid, running)
        body = await gql(
            "{ dbActivity { pid database applicationName state query queryMs backendType } }",
            token=admin_token,
        )
        async with _raw(database_url) as other:
            assert await other.fetchval("SELECT pg_cancel_backend($1)", pid)
        with pytest.raises(asyncpg.QueryCanceledError):
            await sleeper
    assert "errors" not in body, body
    mine = [b for b in body["data"]["dbActivity"] if b["pid"] == pid]
    assert len(mine) == 1, body
    assert mine[0]["state"] == "active"
    assert "pg_sleep" in mine[0]["query"]
    assert mine[0]["applicationName"] == "ops-test"
    assert mine[0]["queryMs"] >= 100
    assert mine[0]["database"] == urlsplit(database_url).path.lstrip("/")


async def test_db_locks_shows_a_blocked_backend_and_its_blocker(
    gql: GraphQLClient, admin_token: str, database_url: str
) -> None:
    async with _raw(database_url) as holder, _raw(database_url) as waiter:
        holder_pid = await holder.fetchval("SELECT pg_backend_pid()")
        waiter_pid = await waiter.fetchval("SELECT pg_backend_pid()")
        tx = holder.transaction()
        await tx.start()
        await holder.execute("LOCK TABLE login_attempts IN ACCESS EXCLUSIVE MODE")
        blocked = asyncio.create_task(waiter.fetchval("SELECT count(*) FROM login_attempts"))
        try:
            await _until_backend(database_url, waiter_pid, "wait_event_type = 'Lock'")
            body = await gql(
                "{ dbLocks { pid lockType mode relation database waitingMs query blockedBy } }",
                token=admin_token,
            )
        finally:
            await tx.rollback()
        assert await blocked == 0
    assert "errors" not in body, body
    waiting = [lock for lock in body["data"]["dbLocks"] if lock["pid"] == waiter_pid]
    assert len(waiting) == 1, body
    lock = waiting[0]
    assert lock["relation"] == "login_attempts"
    assert lock["mode"] == "AccessShareLock"
    assert lock["lockType"] == "relation"
    assert lock["blockedBy"] == [holder_pid]
    assert "login_attempts" in lock["query"]


async def test_db_connections_counts_by_state(
    gql: GraphQLClient, admin_token: str, database_url: str
) -> None:
    async with _raw(database_url), _raw(database_url):
        body = await gql(
            "{ dbConnections { total maxConnections byState { state count } } }",
            token=admin_token,
        )
    assert "errors" not in body, body
    counts = body["data"]["dbConnections"]
    by_state = {s["state"]: s["count"] for s in counts["byState"]}
    assert by_state.get("idle", 0) >= 2  # the two raw connections
    assert by_state.get("active", 0) >= 1  # the backend answering this query
    assert counts["total"] == sum(by_state.values())
    assert counts["maxConnections"] >= counts["total"]


async def test_db_size_reports_database_and_tables(
    gql: GraphQLClient, admin_token: str, db: Database
) -> None:
    for n in range(30):
        await insert_user(db, email=f"size-{n}@example.com")
    async with db.engine.begin() as conn:
        await conn.execute(text("ANALYZE users"))
    body = await gql(
        "{ dbSize { name bytes pretty tables { schema name totalBytes tableBytes indexBytes "
        "rowEstimate } } }",
        token=admin_token,
    )
    assert "errors" not in body, body
    size = body["data"]["dbSize"]
    assert size["bytes"] > 1_000_000  # even an empty PostgreSQL database is several MB
    assert size["pretty"].endswith(("kB", "MB", "GB"))
    tables = {t["name"]: t for t in size["tables"]}
    assert {"users", "user_sessions", "user_profiles", "alembic_version"} <= set(tables)
    users = tables["users"]
    assert users["schema"] == "public"
    assert users["rowEstimate"] == 31  # 30 + the admin
    assert users["tableBytes"] > 0 and users["indexBytes"] > 0
    assert users["totalBytes"] >= users["tableBytes"] + users["indexBytes"]
