"""Housekeeping: delete expired sessions, spent one-time tokens, old login attempts, expired MFA
challenges, read fences every replica has replayed, and automatic persisted queries unused for
``graphql.persisted_query_idle_ttl`` or beyond the store's budget, in bounded batches so that no
statement holds locks for long.

``gql-api db cleanup`` runs it once; the server runs it every ``database.cleanup_interval``
(:func:`run_periodic_cleanup`). With several workers or replicas only the one holding a
PostgreSQL advisory lock works at a time; the lock is transaction-scoped, so it is safe behind
PgBouncer in transaction mode too.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from gql_api.config import Settings
from gql_api.db import Database
from gql_api.repositories import locks, login_attempts, persisted_queries, replication
from gql_api.repositories import mfa as mfa_repo
from gql_api.repositories import one_time_tokens as token_repo
from gql_api.repositories import sessions as session_repo

log = logging.getLogger(__name__)

BATCH = 5_000
# Any fixed 64-bit key; all replicas of the service agree on it.
CLEANUP_LOCK_KEY = 0x6771_6C5F_636C_6E75

# Each deletes at most a batch of rows picked by an indexed predicate; the argument is how long
# to keep rows (seconds).
_DELETERS: dict[str, Callable[[AsyncSession, float, int], Awaitable[int]]] = {
    "user_sessions": lambda session, keep, batch: session_repo.delete_expired(
        session, keep_revoked_s=keep, batch=batch
    ),
    "one_time_tokens": lambda session, keep, batch: token_repo.delete_spent(session, batch=batch),
    "login_attempts": lambda session, keep, batch: login_attempts.delete_older_than(
        session, keep_s=keep, batch=batch
    ),
    "mfa_challenges": lambda session, keep, batch: mfa_repo.delete_expired_challenges(
        session, batch=batch
    ),
    "read_fences": lambda session, keep, batch: replication.delete_satisfied_fences(
        session, keep_s=keep, batch=batch
    ),
}


async def cleanup_expired(
    db: Database, settings: Settings, *, batch: int = BATCH
) -> dict[str, int]:
    """Remove what has expired; returns the number of rows removed per table."""
    # Revoked sessions are kept as long as a refresh token could still be replayed against them
    # (reuse detection), and attempts as long as the longest rate-limit window.
    keep = {
        "user_sessions": settings.auth.refresh_reuse_grace.total_seconds() + 86_400,
        "one_time_tokens": 0.0,
        "login_attempts": max(
            settings.auth.login_failure_window.total_seconds(),
            settings.auth.register_window.total_seconds(),
            settings.auth.mail_window.total_seconds(),
        ),
        "mfa_challenges": 0.0,
        # A replica in the rotation lags at most replica_max_lag (checked every
        # replica_check_interval): older fences are behind every replica that may serve a read.
        "read_fences": settings.database.replica_max_lag.total_seconds()
        + settings.database.replica_check_interval.total_seconds()
        + 60.0,
    }
    removed: dict[str, int] = {}
    for table, delete_batch in _DELETERS.items():
        total = 0
        while True:
            async with db.transaction() as session:
                count = await delete_batch(session, keep[table], batch)
            total += count
            if count < batch:
                break
        removed[table] = total
    removed["persisted_queries"] = await _cleanup_persisted_queries(db, settings, batch=batch)
    return removed


async def _cleanup_persisted_queries(db: Database, settings: Settings, *, batch: int) -> int:
    """Idle (and oversized) automatic entries in batches, then the least recently used ones
    beyond the budget (which bounds their number, so that is one statement)."""
    graphql = settings.graphql
    total = 0
    while True:
        async with db.transaction() as session:
            count = await persisted_queries.delete_idle(
                session,
                idle_s=graphql.persisted_query_idle_ttl.total_seconds(),
                max_query_bytes=graphql.persisted_query_max_bytes,
                batch=batch,
            )
        total += count
        if count < batch:
            break
    budget = persisted_queries.Budget(
        max_bytes=graphql.persisted_query_store_max_bytes,
        max_entries=graphql.persisted_query_store_max_entries,
    )
    async with db.transaction() as session:
        total += await persisted_queries.evict_beyond(session, budget=budget)
    return total


async def cleanup_if_leader(
    db: Database, settings: Settings, *, batch: int = BATCH
) -> dict[str, int] | None:
    """Clean up unless another process is doing it right now (then return None)."""
    async with db.transaction() as holder:
        # The holder transaction keeps the lock while the batches commit on other connections.
        if not await locks.try_transaction_lock(holder, key=CLEANUP_LOCK_KEY):
            return None
        return await cleanup_expired(db, settings, batch=batch)


async def run_periodic_cleanup(db: Database, settings: Settings) -> None:
    """Every ``cleanup_interval`` (with 10% jitter so replicas spread out), until cancelled."""
    interval = settings.database.cleanup_interval.total_seconds()
    while True:
        await asyncio.sleep(interval * random.uniform(0.9, 1.1))
        try:
            removed = await cleanup_if_leader(db, settings)
        except Exception as exc:  # the next round tries again; the server keeps serving
            log.warning("periodic cleanup failed: %s: %s", exc.__class__.__name__, exc)
            continue
        if removed is None:
            log.debug("periodic cleanup skipped: another process holds the lock")
        elif any(removed.values()):
            log.info(
                "periodic cleanup removed %s",
                ", ".join(f"{count} {table}" for table, count in removed.items()),
            )
