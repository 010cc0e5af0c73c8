"""PostgreSQL advisory locks: one process at a time for work every replica could start."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_TRY_XACT_LOCK = text("SELECT pg_try_advisory_xact_lock(:key)")


async def try_transaction_lock(session: AsyncSession, *, key: int) -> bool:
    """Take the lock for the rest of the session's transaction, or False when another holds
    it. Transaction-scoped, so it is released at commit and safe behind PgBouncer too."""
    return bool((await session.execute(_TRY_XACT_LOCK, {"key": key})).scalar_one())
