"""The pool hands out live connections: one cut while idle is replaced, not handed out; and the
hot-path reads spare the transaction round trips.

Observed from outside: an app with a pool of one connection on a database of its own, its
backends in ``pg_stat_activity`` (``application_name = 'gql_api'``), cut with
``pg_terminate_backend``, and its answers over HTTP.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from gql_api.db import Database, migrations
from gql_api.web.app import create_app
from tests.conftest import insert_user, make_settings, session_token

# Longer than a pooled connection may sit idle before it is pinged on its next checkout (one
# second: gql_api.db): only such a connection is checked, one in steady use is taken as alive.
IDLE_BEFORE_CUT = "1.5 seconds"
APP_BACKENDS = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
    "AND application_name = 'gql_api'"
)


@dataclass
class OneConnectionApp:
    http: httpx.AsyncClient
    observer: asyncpg.Connection
    token: str

    async def graphql(self, query: str) -> dict[str, Any]:
        response = await self.http.post(
            "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {self.token}"}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def backends(self) -> list[int]:
        return [row["pid"] for row in await self.observer.fetch(APP_BACKENDS)]

    async def until(self, sql: str, what: str, timeout: float = 30.0) -> Any:
        """Poll ``sql`` until it returns a true value (no guessed sleeps)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not (value := await self.observer.fetchval(sql)):
            assert asyncio.get_running_loop().time() < deadline, f"timed out waiting: {what}"
            await asyncio.sleep(0.05)
        return value

    async def cut_the_idle_connection(self) -> int:
        """Wait until the app's one connection has sat idle long enough to be pinged, cut it
        (as a server restart, a proxy or an admin would), and wait until it is gone."""
        pid = await self.until(
            f"SELECT pid FROM ({APP_BACKENDS} AND state = 'idle' "
            f"AND clock_timestamp() - state_change > interval '{IDLE_BEFORE_CUT}') AS idle",
            "the app's connection idle",
        )
        assert await self.backends() == [pid]
        assert await self.observer.fetchval("SELECT pg_terminate_backend($1)", pid)
        await self.until(f"SELECT NOT EXISTS ({APP_BACKENDS})", "the cut connection gone")
        return int(pid)


@asynccontextmanager
async def one_connection_app(
    fresh_database: Callable[[], Awaitable[str]], max_open_conns: int = 1
) -> AsyncIterator[OneConnectionApp]:
    """The app (with a pool of one connection, or ``max_open_conns`` of which one is kept
    idle) on a migrated database of its own, an admin's token, and a connection to watch it
    from."""
    url = await fresh_database()
    setup = Database(make_settings(url).database, url, None)
    try:
        await migrations.upgrade(setup.engine, "head")
        admin = await insert_user(setup, email="admin@example.com", role="admin")
        token = await session_token(setup, make_settings(url), admin)
    finally:
        await setup.dispose()
    settings = make_settings(
        url,
        database={"max_open_conns": max_open_conns, "max_idle_conns": 1, "cleanup_interval": "0"},
    )
    app = create_app(settings)
    observer = await asyncpg.connect(url)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40002))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                yield OneConnectionApp(http, observer, token)
    finally:
        await observer.close()


async def test_a_connection_cut_while_idle_is_replaced(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    """``/readyz`` pings and reads the schema revision through SQLAlchemy's execution."""
    async with one_connection_app(fresh_database) as app:
        assert (await app.http.get("/readyz")).json()["status"] == "ready"
        cut = await app.cut_the_idle_connection()
        # Handed out unchecked, the dead connection would answer 503 "unavailable".
        response = await app.http.get("/readyz")
        assert response.status_code == 200 and response.json()["status"] == "ready"
        replacement = await app.backends()
        assert len(replacement) == 1 and replacement != [cut]


async def test_a_direct_read_gets_a_live_connection_too(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    """The token check (a hot read straight on asyncpg, not behind PgBouncer) still takes the
    pool's connections, pings included."""
    async with one_connection_app(fresh_database) as app:
        me = await app.graphql("{ me { email } }")
        assert me == {"data": {"me": {"email": "admin@example.com"}}}
        cut = await app.cut_the_idle_connection()
        # Handed out unchecked, the dead connection would fail the token check: an error.
        assert await app.graphql("{ me { email } }") == me
        replacement = await app.backends()
        assert len(replacement) == 1 and replacement != [cut]
        stats = await app.graphql("{ dbPoolStats { invalidatedTotal openedTotal } }")
        assert "errors" not in stats, stats
        assert stats["data"]["dbPoolStats"]["invalidatedTotal"] >= 1
        assert stats["data"]["dbPoolStats"]["openedTotal"] >= 2


async def test_connections_beyond_max_idle_are_kept_under_load_and_closed_once_idle(
    fresh_database: Callable[[], Awaitable[str]], caplog: pytest.LogCaptureFixture
) -> None:
    """Concurrent pages of users hold up to four connections at once (each page reads its
    relations side by side). Returned, those beyond ``max_idle_conns`` (1) stay open for the
    next request instead of being closed and opened again for each one; once idle for a second
    the server closes them, cleanly (closing an asyncpg connection awaits the driver)."""
    page = "{ users(first: 5) { edges { node { email profile { bio } sessions { id } } } } }"
    stats = "{ dbPoolStats { openedTotal maxIdleClosed idle } }"
    async with one_connection_app(fresh_database, max_open_conns=4) as app:
        for _ in range(10):
            answers = await asyncio.gather(*(app.graphql(page) for _ in range(4)))
            assert all("errors" not in answer for answer in answers), answers
        busy = (await app.graphql(stats))["data"]["dbPoolStats"]
        # Closed on return and opened again, every burst would open new connections.
        assert 2 <= busy["openedTotal"] <= 4, busy
        await app.until(f"SELECT count(*) = 1 FROM ({APP_BACKENDS}) AS b", "one backend left")
        idle = (await app.graphql(stats))["data"]["dbPoolStats"]
        assert idle["maxIdleClosed"] == busy["openedTotal"] - 1, idle
        assert idle["openedTotal"] == busy["openedTotal"] and idle["idle"] == 1, idle
    failures = [r for r in caplog.records if r.levelno >= logging.WARNING and "pool" in r.name]
    assert not failures, [r.getMessage() for r in failures]


async def test_reads_need_no_transaction_round_trips(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    """Hot-path reads (token check, the viewer's row) send no BEGIN/COMMIT/ROLLBACK; a unit of
    work (a mutation) still runs in a transaction. Counted by pg_stat_statements."""
    async with one_connection_app(fresh_database) as app:
        preload = await app.observer.fetchval("SHOW shared_preload_libraries")
        if "pg_stat_statements" not in preload:
            # A stock server (the PostgreSQL 15 run); the embedded run preloads it.
            pytest.skip("pg_stat_statements is not in shared_preload_libraries on this server")
        await app.observer.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

        async def transaction_statements() -> int:
            return int(
                await app.observer.fetchval(
                    "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s "
                    "JOIN pg_database d ON d.oid = s.dbid AND d.datname = current_database() "
                    "WHERE s.query ~* '^\\s*(BEGIN|START TRANSACTION|COMMIT|ROLLBACK|END)\\M'"
                )
            )

        # The engine's first connection runs SQLAlchemy's one-time dialect set-up (in a
        # transaction): warm up before counting.
        assert "errors" not in await app.graphql("{ me { email } }")
        before = await transaction_statements()
        for _ in range(3):
            body = await app.graphql("{ me { email firstName } }")
            assert body["data"]["me"]["email"] == "admin@example.com", body
        assert await transaction_statements() == before

        body = await app.graphql('mutation { updateMe(input: { firstName: "Ada" }) { firstName } }')
        assert body == {"data": {"updateMe": {"firstName": "Ada"}}}
        assert await transaction_statements() >= before + 2  # BEGIN ... COMMIT


async def terminate_the_sleeper(observer: asyncpg.Connection) -> None:
    """Once the backend running ``SELECT pg_sleep(60)`` is busy with it, the server ends its
    session (FATAL 57P01, as a shutdown or an admin would)."""
    deadline = asyncio.get_running_loop().time() + 30
    while not (
        pid := await observer.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%' "
            "AND state = 'active' AND pid <> pg_backend_pid()"
        )
    ):
        assert asyncio.get_running_loop().time() < deadline, "the statement never started"
        await asyncio.sleep(0.05)
    assert await observer.fetchval("SELECT pg_terminate_backend($1)", pid)


async def test_a_session_ended_mid_read_is_not_handed_out_again(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    """The server ends a backend in the middle of a direct read (FATAL, as a shutdown, a crash
    or an admin does): the connection is dropped, and the next read on a pool of one gets a new
    one instead of asyncpg's "another operation is in progress"."""
    url = await fresh_database()
    db = Database(make_settings(url, database={"max_open_conns": 1}).database, url, None)
    observer = await asyncpg.connect(url)
    try:
        sleeping = asyncio.create_task(db.fetch(text("SELECT pg_sleep(60) AS slept")))
        await terminate_the_sleeper(observer)
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError)):
            await sleeping
        for _ in range(3):  # the same one-connection pool, read after read
            rows = await db.fetch(text("SELECT 1 AS one"))
            assert rows[0].one == 1
    finally:
        await observer.close()
        await db.dispose()


async def test_a_session_ended_mid_transaction_is_not_handed_out_again(
    fresh_database: Callable[[], Awaitable[str]],
) -> None:
    """The same through SQLAlchemy (a transaction): the failed reset of the connection makes
    SQLAlchemy drop it, for the reads straight on asyncpg and the sessions alike."""
    url = await fresh_database()
    db = Database(make_settings(url, database={"max_open_conns": 1}).database, url, None)
    observer = await asyncpg.connect(url)

    async def sleep_in_a_transaction() -> None:
        async with db.transaction() as session:
            await session.execute(text("SELECT pg_sleep(60)"))

    try:
        for _ in range(2):  # twice: the second cut lands on the connection that replaced the first
            sleeping = asyncio.create_task(sleep_in_a_transaction())
            await terminate_the_sleeper(observer)
            with pytest.raises(DBAPIError):  # SQLAlchemy's wrapper of the FATAL error
                await sleeping
            for _ in range(3):
                assert (await db.fetch(text("SELECT 1 AS one")))[0].one == 1
                async with db.transaction() as session:
                    assert (await session.execute(text("SELECT 2"))).scalar_one() == 2
    finally:
        await observer.close()
        await db.dispose()


async def test_requests_get_pooled_connections_in_arrival_order(database_url: str) -> None:
    """When a connection comes back, the request that waited longest gets it, not one that
    happens to ask at that moment. (SQLAlchemy's pool gives it to whichever task runs first
    after the return, and under load that is rarely the one woken for it: a few requests
    waited many turns, for a p99 four times the median.)"""
    db = Database(
        make_settings(database_url, database={"max_open_conns": 1, "max_idle_conns": 1}).database,
        database_url,
        None,
    )
    served: list[str] = []

    async def read(name: str) -> None:
        rows = await db.for_request().fetch(text("SELECT :name AS name"), {"name": name})
        served.append(rows[0].name)

    try:
        late: list[asyncio.Task[None]] = []

        def ask_as_it_comes_back(*_: Any) -> None:
            # Scheduled as the connection goes back, so it runs before the task woken for it.
            late.append(asyncio.get_running_loop().create_task(read("late")))

        event.listen(db.engine.sync_engine.pool, "checkin", ask_as_it_comes_back, once=True)
        async with db.for_request().read() as conn:  # the pool's one connection, held
            await conn.execute(text("SELECT 1"))
            waiting = [asyncio.create_task(read(name)) for name in ("second", "third")]
            # Both reach their checkout within a few turns of the loop (no I/O before it).
            for _ in range(100):
                await asyncio.sleep(0)
            assert served == []
        await asyncio.gather(*waiting)
        await asyncio.gather(*late)
    finally:
        await db.dispose()
    assert served == ["second", "third", "late"]
