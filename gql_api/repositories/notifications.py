"""PostgreSQL notifications: the realtime events' ``pg_notify`` (inside the caller's transaction,
so PostgreSQL delivers it at commit and drops it at rollback) and the listener's liveness probe."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from gql_api.repositories.row_source import RowSource

_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
# Plain text: the LISTEN connection is a bare asyncpg connection (gql_api.realtime.listener).
_PROBE = "SELECT 1"


async def notify(session: AsyncSession, *, channel: str, payload: str) -> None:
    await session.execute(_NOTIFY, {"channel": channel, "payload": payload})


async def probe_listener(db: RowSource) -> None:
    """One round trip on the LISTEN connection: raises when it is gone."""
    await db.fetch(_PROBE)
