"""Housekeeping: delete expired sessions, spent one-time tokens and old login attempts, in
bounded batches so that no statement holds locks for long."""

from __future__ import annotations

from sqlalchemy import text

from gql_api.config import Settings
from gql_api.db import Database

BATCH = 5_000

# Each statement deletes at most BATCH rows picked by an indexed predicate.
_STATEMENTS = {
    "user_sessions": (
        "DELETE FROM user_sessions WHERE id IN (SELECT id FROM user_sessions "
        "WHERE expires_at < now() OR revoked_at < now() - make_interval(secs => :keep) "
        "LIMIT :batch)"
    ),
    "one_time_tokens": (
        "DELETE FROM one_time_tokens WHERE id IN (SELECT id FROM one_time_tokens "
        "WHERE expires_at < now() OR used_at IS NOT NULL LIMIT :batch)"
    ),
    "login_attempts": (
        "DELETE FROM login_attempts WHERE id IN (SELECT id FROM login_attempts "
        "WHERE created_at < now() - make_interval(secs => :keep) LIMIT :batch)"
    ),
}


async def cleanup_expired(db: Database, settings: Settings, *, batch: int = BATCH) -> dict[str, int]:
    """Remove what has expired; returns the number of rows removed per table."""
    # Revoked sessions are kept as long as a refresh token could still be replayed against them
    # (reuse detection), and attempts as long as the longest rate-limit window.
    keep = {
        "user_sessions": settings.auth.refresh_reuse_grace.total_seconds() + 86_400,
        "one_time_tokens": 0.0,
        "login_attempts": max(
            settings.auth.login_failure_window.total_seconds(),
            settings.auth.register_window.total_seconds(),
        ),
    }
    removed: dict[str, int] = {}
    for table, statement in _STATEMENTS.items():
        total = 0
        while True:
            async with db.transaction() as session:
                result = await session.execute(
                    text(statement), {"batch": batch, "keep": keep[table]}
                )
            count = int(result.rowcount or 0)  # type: ignore[attr-defined]
            total += count
            if count < batch:
                break
        removed[table] = total
    return removed
