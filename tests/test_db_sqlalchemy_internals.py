"""The private SQLAlchemy APIs behind ``gql_api.db.sqlalchemy_internals`` still do what the service
needs. An upgrade that changes one fails here, naming it, rather than as wrong statistics or
wrong parameters somewhere else."""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.pool import QueuePool

from gql_api.db import Database
from gql_api.db.sqlalchemy_internals import (
    cache_key,
    close_taken,
    intercept_checkouts,
    intercept_returns,
    run_sync,
    take_idle,
)
from gql_api.models import UserSession
from gql_api.repositories import sessions as session_repo
from gql_api.repositories.row_source import any_of_ids
from gql_api.repositories.user_listing import users
from tests.users_support import insert_many_users


def test_the_private_apis_exist() -> None:
    assert callable(getattr(select(users.c.id), "_generate_cache_key", None)), (
        "ClauseElement._generate_cache_key is gone: gql_api.db.direct_reads needs a new cache key"
    )
    for name in ("_do_get", "_do_return_conn"):
        assert callable(getattr(QueuePool, name, None)), (
            f"QueuePool.{name} is gone: gql_api.db cannot time pool waits any more"
        )
    assert callable(getattr(QueuePool, "_dec_overflow", None)), (
        "QueuePool._dec_overflow is gone: gql_api.db.pool cannot close idle connections"
    )
    import inspect

    from sqlalchemy.sql.compiler import SQLCompiler

    assert "_check" in inspect.signature(SQLCompiler.construct_params).parameters, (
        "construct_params(_check=) is gone: gql_api.db.direct_reads cannot resolve a"
        " statement's own values once"
    )


async def test_idle_connections_are_taken_oldest_first_beyond_the_kept_ones(
    db: Database, database_url: str
) -> None:
    """``take_idle`` takes from the pool's queue (``pool._pool``) the idle connections beyond
    the most recently returned, oldest first, and leaves the others to be handed out, newest
    first; ``close_taken`` closes one and gives its slot back."""
    settings = db.settings.model_copy(update={"max_open_conns": 3, "max_idle_conns": 1})
    own = Database(settings, database_url, None)
    pool = own.engine.sync_engine.pool
    try:
        async with own.engine.connect() as a, own.engine.connect() as b:
            async with own.engine.connect() as c:
                pids = [await conn.scalar(text("SELECT pg_backend_pid()")) for conn in (a, b, c)]
            # c came back first, then b, then a (the most recent)
        assert pool.checkedin() == 3
        assert take_idle(pool, 1, returned_before=0.0) is None  # none came back that early
        assert take_idle(pool, 3, returned_before=float("inf")) is None  # none beyond 3
        for left in (2, 1):
            taken = take_idle(pool, 1, returned_before=float("inf"))
            assert taken is not None and pool.checkedin() == left
            await run_sync(close_taken, pool, taken)
        assert take_idle(pool, 1, returned_before=float("inf")) is None
        async with own.engine.connect() as kept:  # the most recently returned: a's
            assert await kept.scalar(text("SELECT pg_backend_pid()")) == pids[0]
            async with own.engine.connect() as d, own.engine.connect() as e:  # slots are free
                fresh = {await d.scalar(text("SELECT 1")), await e.scalar(text("SELECT 1"))}
                assert fresh == {1}
    finally:
        await own.dispose()


def test_the_cache_key_separates_a_statement_shape_from_its_values() -> None:
    first = cache_key(select(users.c.id).where(users.c.email == "a@example.com"))
    second = cache_key(select(users.c.id).where(users.c.email == "b@example.com"))
    other_shape = cache_key(select(users.c.id).where(users.c.last_name == "a@example.com"))
    assert first.key == second.key
    assert first.key != other_shape.key
    assert [bind.value for bind in first.bindparams] == ["a@example.com"]
    assert [bind.value for bind in second.bindparams] == ["b@example.com"]


async def test_interception_sees_every_checkout_and_return(db: Database, database_url: str) -> None:
    own = Database(db.settings, database_url, None)
    seen: list[str] = []

    def on_checkout(take: Callable[[], Any]) -> Any:
        seen.append("checkout")
        return take()

    def on_return(give_back: Callable[[], None]) -> None:
        seen.append("return")
        give_back()

    try:
        intercept_checkouts(own.engine.sync_engine.pool, on_checkout)
        intercept_returns(own.engine.sync_engine.pool, on_return)
        for _ in range(2):
            async with own.engine.connect() as conn:
                assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
        await own.fetch(select(users.c.id).limit(1))  # a direct read uses the same pool,
        assert seen == ["checkout", "return"] * 2 + ["checkout"]  # and keeps the connection
        await own.fetch(select(users.c.id).limit(1))  # for the next read, past the pool
        assert seen == ["checkout", "return"] * 2 + ["checkout"]
        own.lane.spare_one()  # back when the lane gives it back (gql_api.db.connection_lane)
        assert seen == ["checkout", "return"] * 3
        # The service's own counters still run underneath: nothing waited, nothing was closed.
        assert own.counters.wait_count == 0 and own.counters.closed_max_idle == 0
    finally:
        await own.dispose()


async def test_direct_reads_bind_values_as_sqlalchemy_does(db: Database) -> None:
    """UUID arrays, datetimes and strings go to asyncpg through the dialect's bind processors
    (public API): the rows equal those of SQLAlchemy's own execution of the statement."""
    await insert_many_users(db, 3, sessions_each=2)
    async with db.read() as conn:
        made = list((await conn.execute(select(users.c.id))).scalars())
    ids = [*made, uuid.uuid4()]
    direct = await session_repo.active_by_user_ids(db, user_ids=ids)
    sessions = UserSession.__table__  # type: ignore[attr-defined]
    statement = (
        select(sessions.c.id, sessions.c.user_id, sessions.c.ip_address, sessions.c.device_info)
        .where(
            sessions.c.user_id == any_of_ids(),
            sessions.c.expires_at > datetime.now(UTC) - timedelta(days=1),
            sessions.c.revoked_reason.is_distinct_from("no such reason"),
        )
        .order_by(sessions.c.id)
    )
    async with db.read() as conn:
        expected = [tuple(row) for row in (await conn.execute(statement, {"ids": ids})).all()]
    assert len(direct) == 6
    assert [tuple(row) for row in await db.fetch(statement, {"ids": ids})] == expected
    assert sorted(row.id for row in direct) == [row[0] for row in expected]


async def test_a_statement_read_again_binds_each_reads_values(db: Database) -> None:
    """A statement object is rendered once and its own values resolved once; each read still
    binds its own ``params``, another object of the same shape its own values, a value
    computed per execution is computed per read, and a missing parameter is SQLAlchemy's
    error."""
    from sqlalchemy import bindparam, literal
    from sqlalchemy.exc import InvalidRequestError

    await insert_many_users(db, 5)
    emails = sorted(row.email for row in await db.fetch(select(users.c.email)))

    def emails_after(limit: int) -> Any:
        return (
            select(users.c.email)
            .where(users.c.email > bindparam("after"))
            .order_by(users.c.email)
            .limit(limit)
        )

    two, three = emails_after(2), emails_after(3)  # one shape, two own values
    for after in (emails[0], emails[1], emails[0]):
        got = [row.email for row in await db.fetch(two, {"after": after})]
        assert got == [e for e in emails if e > after][:2]
    assert [row.email for row in await db.fetch(three, {"after": emails[0]})] == emails[1:4]
    with pytest.raises(InvalidRequestError, match="after"):
        await db.fetch(two, {})
    counter = iter(range(100))
    counted = select(bindparam("n", callable_=lambda: next(counter)) + literal(0))
    assert [(await db.fetch(counted))[0][0] for _ in range(3)] == [0, 1, 2]


async def test_run_sync_runs_what_await_needs_in_reused_greenlets() -> None:
    """SQLAlchemy's ``await_`` works inside ``run_sync`` (its greenlet protocol unchanged), with
    the caller's context variables; a finished greenlet runs the next call, also after an
    error, and concurrent calls that wait each get their own."""
    from greenlet import getcurrent
    from sqlalchemy.util.concurrency import await_

    seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")

    async def later(value: int) -> int:
        await asyncio.sleep(0)
        return value

    def waits(value: int) -> tuple[int, str, Any]:
        return await_(later(value)) + 1, seen.get(), getcurrent()

    seen.set("caller's")
    first = await run_sync(waits, 1)
    assert first[:2] == (2, "caller's")
    with pytest.raises(ZeroDivisionError):
        await run_sync(lambda: 1 / 0)
    second = await run_sync(waits, 2)
    assert second[0] == 3 and second[2] is first[2]  # one greenlet served all three calls
    together = await asyncio.gather(run_sync(waits, 3), run_sync(waits, 4))
    assert [r[0] for r in together] == [4, 5] and together[0][2] is not together[1][2]


async def test_run_sync_passes_a_cancellation_to_the_call() -> None:
    from sqlalchemy.util.concurrency import await_

    told: list[str] = []
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    def waits() -> None:
        try:
            await_(forever())
        except asyncio.CancelledError:
            told.append("cancelled")
            raise

    task = asyncio.create_task(run_sync(waits))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert told == ["cancelled"]
    assert await run_sync(lambda: 7) == 7  # the greenlet is fit for the next call


async def test_the_compiled_statements_kept_are_bounded_by_their_text(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relations written as JSON make a statement per selection (aliases included): the reads'
    cache of compiled statements starts again past a size of SQL text, and reads go on."""
    from gql_api.db import direct_reads
    from gql_api.repositories.json_text import JsonField, Rendering

    monkeypatch.setattr(direct_reads, "MAX_COMPILED_SQL_BYTES", 8_000)
    await insert_many_users(db, 2, sessions_each=2)
    ids = [row.id for row in await db.fetch(select(users.c.id))]
    for n in range(12):  # about 1.1 KB of SQL each
        fields = (
            JsonField(f"id{n}", "id", Rendering.UUID),
            JsonField("at", "expires_at", Rendering.TIMESTAMP),
        )
        rows = await session_repo.active_json_by_user_ids(db, user_ids=ids, fields=fields)
        assert len(rows) == 2 and all(f'"id{n}":' in row.json for row in rows), rows
        assert 0 < db.reader.kept_sql_bytes <= 8_000
