"""The pool hands out live connections: one cut while idle is replaced, not handed out."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from gql_api import db as db_module
from gql_api.db import Database
from tests.conftest import make_settings


async def test_a_connection_cut_while_idle_is_replaced(
    database_url: str, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_S", 0.0)
    settings = make_settings(database_url, database={"max_open_conns": 1, "max_idle_conns": 1})
    database = Database(settings.database, database_url, None)
    try:
        async with database.read() as conn:
            first_pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        # Somebody (a restart, a proxy, an admin) cuts the pooled connection while it is idle.
        async with db.engine.connect() as other:
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first_pid})
        async with database.read() as conn:
            second_pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert second_pid != first_pid
    finally:
        await database.dispose()


async def test_a_direct_read_gets_a_live_connection_too(
    database_url: str, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reads that skip SQLAlchemy's execution (gql_api.reads) still take the pool's
    connections, pings included."""
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_S", 0.0)
    settings = make_settings(database_url, database={"max_open_conns": 1, "max_idle_conns": 1})
    database = Database(settings.database, database_url, None)
    pid = text("SELECT pg_backend_pid() AS pid")
    try:
        assert database.reader.direct
        first_pid = (await database.fetch(pid))[0].pid
        async with db.engine.connect() as other:
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first_pid})
        second_pid = (await database.fetch(pid))[0].pid
        assert second_pid != first_pid
        assert database.counters.invalidated >= 1
    finally:
        await database.dispose()


async def test_reads_need_no_transaction_round_trips(db: Database) -> None:
    """Hot-path reads run outside a transaction (no BEGIN/ROLLBACK round trips)."""
    async with db.read() as conn:
        await conn.execute(text("SELECT 1"))
        raw = await conn.get_raw_connection()
        assert raw.driver_connection.is_in_transaction() is False
    async with db.session() as session:  # unit-of-work sessions still open transactions
        await session.execute(text("SELECT 1"))
        raw = await (await session.connection()).get_raw_connection()
        assert raw.driver_connection.is_in_transaction() is True
