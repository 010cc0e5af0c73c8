"""Helpers for the users/profiles/admin tests: counting SQL statements, bulk test users."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, text

from gql_api.db import Database


@contextmanager
def count_statements(db: Database) -> Iterator[list[str]]:
    """Every SQL statement sent while the block runs (BEGIN/COMMIT excluded: the
    asyncpg dialect issues those outside the cursor)."""
    statements: list[str] = []

    def on_execute(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        statements.append(statement)

    target = db.engine.sync_engine
    event.listen(target, "before_cursor_execute", on_execute)
    db.reader.listeners.append(statements.append)  # reads that skip SQLAlchemy's execution
    try:
        yield statements
    finally:
        event.remove(target, "before_cursor_execute", on_execute)
        db.reader.listeners.remove(statements.append)


async def insert_many_users(
    db: Database, count: int, *, prefix: str = "many", sessions_each: int = 1
) -> None:
    """``count`` users with a profile and sessions, in three statements (fast set-up)."""
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                """
                WITH made AS (
                    INSERT INTO users (email, password_hash, first_name, last_name)
                    SELECT :prefix || '-' || g || '@example.com', 'x', 'First' || g, 'Last' || g
                    FROM generate_series(1, :n) g
                    RETURNING id
                ), profiles AS (
                    INSERT INTO user_profiles (user_id, bio) SELECT id, 'bio' FROM made
                )
                INSERT INTO user_sessions (user_id, token_hash, expires_at)
                SELECT id, md5(random()::text || id::text || s) || md5(id::text || s),
                       now() + interval '1 day'
                FROM made CROSS JOIN generate_series(1, :s) s
                """
            ),
            {"prefix": prefix, "n": count, "s": sessions_each},
        )


async def forget_session_checks(db: Database) -> None:
    """Make the next bearer check of every app on ``db`` read the database: a transaction
    committed on a bare connection of it counts as changing every user (gql_api/db/commits.py),
    so their session caches forget every check."""
    async with db.engine.begin() as conn:
        await conn.execute(text("SELECT 1"))
