"""Replication positions and read fences (gql_api.db.replicas routes reads with them).

WAL positions are read as byte offsets (``pg_lsn - '0/0'``, a BIGINT): comparable in Python and
decoded by every driver path, where ``pg_lsn`` itself has no asyncpg codec.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from gql_api.repositories.row_source import RowSource

_PRIMARY_POSITION = text("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint AS lsn")

# On a standby: what it has replayed, and whether replay is paused. On a server that is not in
# recovery (a misconfigured "replica"), its own position stands in.
_REPLAY_POSITION = text(
    "SELECT pg_is_in_recovery() AS in_recovery, "
    "(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() "
    "ELSE pg_current_wal_lsn() END - '0/0'::pg_lsn)::bigint AS lsn"
)

# After a write has committed, the primary's position is at or past its commit record.
_RECORD_FENCE = text(
    "INSERT INTO read_fences (user_id, lsn, written_at) "
    "VALUES (:user_id, (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint, now()) "
    "ON CONFLICT (user_id) DO UPDATE SET lsn = EXCLUDED.lsn, written_at = EXCLUDED.written_at "
    "RETURNING lsn"
)

_FENCE_OF = text("SELECT lsn FROM read_fences WHERE user_id = :user_id")


@dataclass(frozen=True)
class ReplayPosition:
    in_recovery: bool
    lsn: int | None


async def primary_position(db: RowSource) -> int:
    rows = await db.fetch(_PRIMARY_POSITION)
    return int(rows[0].lsn)


async def replay_position(db: RowSource) -> ReplayPosition:
    rows: list[Any] = await db.fetch(_REPLAY_POSITION)
    lsn = rows[0].lsn
    in_recovery = bool(rows[0].in_recovery)
    return ReplayPosition(in_recovery=in_recovery, lsn=None if lsn is None else int(lsn))


async def record_fence(db: RowSource, *, user_id: uuid.UUID) -> int:
    """Run on the primary after ``user_id``'s write has committed; returns the fence."""
    rows = await db.fetch(_RECORD_FENCE, {"user_id": user_id})
    return int(rows[0].lsn)


async def fence_of(db: RowSource, *, user_id: uuid.UUID) -> int | None:
    rows = await db.fetch(_FENCE_OF, {"user_id": user_id})
    return int(rows[0].lsn) if rows else None


_DELETE_SATISFIED = text(
    "DELETE FROM read_fences WHERE user_id IN (SELECT user_id FROM read_fences "
    "WHERE written_at < now() - make_interval(secs => :keep) LIMIT :batch)"
)


async def delete_satisfied_fences(session: AsyncSession, *, keep_s: float, batch: int) -> int:
    """At most ``batch`` fences older than ``keep_s``: every replica still in the rotation has
    replayed them (gql_api.ops.maintenance)."""
    result = await session.execute(_DELETE_SATISFIED, {"keep": keep_s, "batch": batch})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
