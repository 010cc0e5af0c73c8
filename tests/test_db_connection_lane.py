"""Direct reads hand their connection on to the next read, past the pool
(``gql_api.db.connection_lane``); to everyone else that connection is one of the pool's idle
ones, and it goes back to the pool in time.

Observed from outside: the pool's checkout and checkin events, its status and counters, and the
database's backends in ``pg_stat_activity``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import event, func, select, text

from gql_api.db import Database
from tests.conftest import make_settings

BACKEND = select(func.pg_backend_pid())


@asynccontextmanager
async def own_database(database_url: str, **database: Any) -> AsyncIterator[Database]:
    db = Database(make_settings(database_url, database=database).database, database_url, None)
    try:
        yield db
    finally:
        await db.dispose()


def pool_events(db: Database) -> list[str]:
    """The pool's checkouts and checkins, in order, from now on."""
    seen: list[str] = []
    pool = db.engine.sync_engine.pool
    event.listen(pool, "checkout", lambda *_: seen.append("checkout"))
    event.listen(pool, "checkin", lambda *_: seen.append("checkin"))
    return seen


async def backend(db: Database) -> int:
    rows = await db.fetch(BACKEND)
    return int(rows[0][0])


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    """Poll ``check`` until it holds (no guessed sleeps)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting: {what}"
        await asyncio.sleep(0.02)


async def test_reads_in_a_row_take_one_connection_out_of_the_pool(database_url: str) -> None:
    async with own_database(database_url) as db:
        seen = pool_events(db)
        pids = {await backend(db) for _ in range(5)}
        assert len(pids) == 1
        assert seen == ["checkout"]  # the four reads after the first took it from the lane
        # Between two reads it is an idle connection, to the pool's figures too.
        assert db.pool_status() == {"open": 1, "in_use": 0, "idle": 1}


async def test_a_kept_connection_goes_back_to_the_pool_in_time(database_url: str) -> None:
    # conn_max_idle_time shorter than the ping delay bounds how long the lane keeps one.
    async with own_database(database_url, conn_max_idle_time="300ms") as db:
        seen = pool_events(db)
        await backend(db)
        assert seen == ["checkout"]

        async def returned() -> bool:
            return seen == ["checkout", "checkin"]

        await until(returned, "the lane's timer giving the connection back")
        await backend(db)  # out of the pool again, whose checks run on it
        assert seen[2:] == ["checkout"]


async def test_a_checkout_finding_no_idle_connection_takes_the_lanes(database_url: str) -> None:
    """With one connection, kept by the lane after a read, a session gets it at once: no wait
    for the pool, no second connection."""
    async with own_database(
        database_url, max_open_conns=1, max_idle_conns=1, pool_timeout="5s"
    ) as db:
        pid = await backend(db)
        async with db.session() as session:
            assert (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one() == pid
        assert db.counters.wait_count == 0
        assert db.counters.opened == 1
        assert await backend(db) == pid  # and the reads go on with it


async def test_a_connection_the_server_closed_is_not_handed_on(database_url: str) -> None:
    observer = await asyncpg.connect(database_url)
    try:
        async with own_database(database_url) as db:
            cut = await backend(db)
            assert await observer.fetchval("SELECT pg_terminate_backend($1)", cut)

            async def gone() -> bool:
                query = "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)"
                return bool(await observer.fetchval(query, cut))

            await until(gone, "the cut backend gone")
            # Handed on, the closed connection would fail this read.
            assert await backend(db) != cut
    finally:
        await observer.close()


async def test_disposing_of_the_pool_closes_the_lanes_connection(database_url: str) -> None:
    """However the engine is disposed of (``Database.dispose`` does it too)."""
    observer = await asyncpg.connect(database_url)
    try:
        async with own_database(database_url) as db:
            kept = await backend(db)
            await db.engine.dispose()

            async def closed() -> bool:
                query = "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)"
                return bool(await observer.fetchval(query, kept))

            await until(closed, "the lane's connection closed with the pool")
            assert await backend(db) != kept  # the reads go on, on the new pool
    finally:
        await observer.close()
