"""bulk_seed_users: N users with profiles and 3 sessions each, one shared hash, re-runnable."""

from __future__ import annotations

from sqlalchemy import text

from gql_api.db import Database
from gql_api.ops.bulk_seed import bulk_seed_users
from tests.conftest import BCRYPT_TEST_ROUNDS


async def _one(db: Database, sql: str) -> object:
    async with db.engine.connect() as conn:
        return (await conn.execute(text(sql))).scalar_one()


async def test_bulk_seed_loads_users_profiles_and_sessions(db: Database) -> None:
    assert await bulk_seed_users(db, 200, rounds=BCRYPT_TEST_ROUNDS) == 200
    assert await _one(db, "SELECT count(*) FROM users WHERE email LIKE 'bulk-%'") == 200
    assert await _one(db, "SELECT count(*) FROM user_profiles") == 200
    assert await _one(db, "SELECT count(*) FROM user_sessions") == 600
    assert await _one(db, "SELECT count(DISTINCT token_hash) FROM user_sessions") == 600
    assert await _one(db, "SELECT count(DISTINCT password_hash) FROM users") == 1
    # Sort keys are spread, and some users never logged in.
    assert await _one(db, "SELECT count(DISTINCT created_at) FROM users") == 200  # type: ignore[operator]
    assert 0 < await _one(db, "SELECT count(*) FROM users WHERE last_login_at IS NULL") < 200  # type: ignore[operator]

    # Re-running skips existing addresses; a larger N adds only the missing users.
    assert await bulk_seed_users(db, 200, rounds=BCRYPT_TEST_ROUNDS) == 0
    assert await bulk_seed_users(db, 250, rounds=BCRYPT_TEST_ROUNDS) == 50
    assert await _one(db, "SELECT count(*) FROM users") == 250
    assert await _one(db, "SELECT count(*) FROM user_sessions") == 750


async def test_bulk_seed_spans_several_batches(db: Database, monkeypatch: object) -> None:
    import gql_api.ops.bulk_seed as module

    monkeypatch.setattr(module, "BATCH_SIZE", 64)  # type: ignore[attr-defined]
    assert await bulk_seed_users(db, 200, rounds=BCRYPT_TEST_ROUNDS) == 200
    highest = "SELECT max(split_part(split_part(email, '@', 1), '-', 2)::int) FROM users"
    assert await _one(db, highest) == 200
