"""Cleanup of expired sessions, spent tokens and old login attempts: only what expired goes."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from sqlalchemy import text

from gql_api import cli
from gql_api.config import Settings
from gql_api.db import Database
from gql_api.ops.maintenance import CLEANUP_LOCK_KEY, cleanup_expired, cleanup_if_leader
from gql_api.web.app import create_app
from tests.conftest import MadeUser, make_settings


async def _session(db: Database, user: MadeUser, expires: str, revoked: str | None = None) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO user_sessions (user_id, token_hash, expires_at, revoked_at) "
                "VALUES (:uid, :hash, now() + CAST(:expires AS text)::interval, "
                "now() + CAST(:revoked AS text)::interval)"
            ),
            {"uid": user.id, "hash": uuid.uuid4().hex * 2, "expires": expires, "revoked": revoked},
        )


async def _token(db: Database, user: MadeUser, expires: str, used: bool) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO one_time_tokens (user_id, purpose, token_hash, expires_at, used_at) "
                "VALUES (:uid, 'reset_password', :hash, now() + CAST(:expires AS text)::interval, "
                "CASE WHEN :used THEN now() END)"
            ),
            {"uid": user.id, "hash": uuid.uuid4().hex * 2, "expires": expires, "used": used},
        )


async def _attempt(db: Database, age: str) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO login_attempts (kind, email, created_at) "
                "VALUES ('login', 'x@example.com', now() - CAST(:age AS text)::interval)"
            ),
            {"age": age},
        )


async def _challenge(db: Database, user: MadeUser, expires: str, consumed: bool) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO mfa_challenges (user_id, token_hash, expires_at, consumed_at) "
                "VALUES (:uid, :hash, now() + CAST(:expires AS text)::interval, "
                "CASE WHEN :consumed THEN now() END)"
            ),
            {
                "uid": user.id,
                "hash": uuid.uuid4().hex * 2,
                "expires": expires,
                "consumed": consumed,
            },
        )


async def _fence(db: Database, age: str) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO read_fences (user_id, lsn, written_at) "
                "VALUES (:uid, 1, now() - CAST(:age AS text)::interval)"
            ),
            {"uid": uuid.uuid4(), "age": age},
        )


async def _expired_and_kept(db: Database, user: MadeUser) -> None:
    """Expired: 5 sessions, 3 tokens, 4 attempts, 3 login challenges, 3 read fences. Kept: 3
    sessions, 1 token, 2 attempts, 1 challenge, 2 fences (younger than the replica lag limit
    plus a check interval and a minute)."""
    for age in ("10 minutes", "1 hour", "2 days"):
        await _fence(db, age)
    for age in ("0 seconds", "30 seconds"):
        await _fence(db, age)
    for expires, consumed in (("-1 minute", False), ("-1 hour", True), ("-1 second", False)):
        await _challenge(db, user, expires, consumed)
    await _challenge(db, user, "+5 minutes", False)
    for _ in range(4):
        await _session(db, user, "-1 minute")
    await _session(db, user, "+1 day", revoked="-3 days")  # revoked long ago
    await _session(db, user, "+1 day")  # active
    await _session(db, user, "+1 day", revoked="-1 minute")  # revoked recently: reuse detection
    await _session(db, user, "+1 minute")
    await _token(db, user, "-1 minute", used=False)
    await _token(db, user, "+1 hour", used=True)
    await _token(db, user, "-1 hour", used=True)
    await _token(db, user, "+1 hour", used=False)
    for _ in range(4):
        await _attempt(db, "1 hour")
    await _attempt(db, "1 minute")
    await _attempt(db, "0 seconds")


async def _counts(db: Database) -> dict[str, int]:
    async with db.engine.connect() as conn:
        return {
            table: int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())
            for table in KEPT
        }


KEPT = {
    "user_sessions": 3,
    "one_time_tokens": 1,
    "login_attempts": 2,
    "mfa_challenges": 1,
    "read_fences": 2,
}


async def test_cleanup_removes_only_what_expired_in_batches(
    db: Database, settings: Settings, user: MadeUser
) -> None:
    await _expired_and_kept(db, user)
    removed = await cleanup_expired(db, settings, batch=2)
    assert removed == {
        "user_sessions": 5,
        "one_time_tokens": 3,
        "login_attempts": 4,
        "mfa_challenges": 3,
        "read_fences": 3,
        "persisted_queries": 0,  # tests/test_abuse_persisted.py covers those
    }
    assert await _counts(db) == KEPT
    async with db.engine.connect() as conn:
        left = (
            await conn.execute(text("SELECT count(*) FROM user_sessions WHERE expires_at < now()"))
        ).scalar_one()
    assert left == 0
    assert await cleanup_expired(db, settings) == dict.fromkeys([*KEPT, "persisted_queries"], 0)


async def test_cli_db_cleanup(
    db: Database,
    user: MadeUser,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await _expired_and_kept(db, user)
    monkeypatch.setenv("USER_SERVICE_DATABASE_URL", database_url)
    for name in ("USER_SERVICE_ENV", "USER_SERVICE_CONFIG", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert await asyncio.to_thread(cli.main, ["db", "cleanup"]) == 0
    out = capsys.readouterr().out
    assert "user_sessions: removed 5" in out
    assert "one_time_tokens: removed 3" in out
    assert "login_attempts: removed 4" in out
    assert await _counts(db) == KEPT


async def test_only_one_process_cleans_at_a_time(
    db: Database, settings: Settings, user: MadeUser, database_url: str
) -> None:
    await _expired_and_kept(db, user)
    other = await asyncpg.connect(database_url)
    try:
        async with other.transaction():  # another replica is cleaning right now
            await other.execute("SELECT pg_advisory_xact_lock($1)", CLEANUP_LOCK_KEY)
            assert await cleanup_if_leader(db, settings) is None
            assert await _counts(db) != KEPT
    finally:
        await other.close()
    assert await cleanup_if_leader(db, settings) is not None
    assert await _counts(db) == KEPT


async def test_server_cleans_up_periodically(
    db: Database, user: MadeUser, database_url: str
) -> None:
    await _expired_and_kept(db, user)
    settings = make_settings(database_url, database={"cleanup_interval": "200ms"})
    app = create_app(settings, db)
    async with app.router.lifespan_context(app):
        for _ in range(50):
            if await _counts(db) == KEPT:
                break
            await asyncio.sleep(0.1)
    assert await _counts(db) == KEPT


async def test_periodic_cleanup_can_be_turned_off(
    db: Database, user: MadeUser, database_url: str
) -> None:
    await _expired_and_kept(db, user)
    before = await _counts(db)
    assert before != KEPT
    settings = make_settings(database_url, database={"cleanup_interval": "0"})
    app = create_app(settings, db)
    async with app.router.lifespan_context(app):
        # A running cleanup with interval 0 would loop without pause; the enabled test above
        # sees a 200 ms one finish well within this window. Nothing may go in a whole second.
        deadline = asyncio.get_running_loop().time() + 1.0
        while asyncio.get_running_loop().time() < deadline:
            assert await _counts(db) == before
            await asyncio.sleep(0.05)
    assert await _counts(db) == before
