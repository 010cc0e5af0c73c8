"""PostgreSQL notifications: the realtime events' ``pg_notify`` (inside the caller's transaction,
so PostgreSQL delivers it at commit and drops it at rollback) and the listener's liveness probe."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


async def notify(session: AsyncSession, *, channel: str, payload: str) -> None:
    await session.execute(_NOTIFY, {"channel": channel, "payload": payload})


async def probe_listener(connection: Any, *, within_s: float) -> None:
    """One round trip on the LISTEN connection (asyncpg): raises when it is gone or silent
    for ``within_s`` seconds."""
    await connection.fetchval("SELECT 1", timeout=within_s)
