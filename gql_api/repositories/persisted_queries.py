"""Persisted GraphQL documents by SHA-256.

Two kinds share the table: automatic entries (Apollo's APQ, stored by any client) live within a
budget of entries and bytes, least recently used evicted first, and go when unused for a while;
trusted entries (``gql-api documents register``) are never evicted and do not count.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gql_api.models import PersistedQuery

# Any fixed 64-bit key: automatic stores take turns on it, so concurrent ones cannot overshoot
# the budget together.
STORE_LOCK_KEY = 0x6771_6C5F_6170_7173


@dataclass(frozen=True)
class Budget:
    """What the automatic entries may hold together."""

    max_bytes: int
    max_entries: int


async def get(session: AsyncSession, *, sha256: str) -> PersistedQuery | None:
    return (
        await session.execute(select(PersistedQuery).where(PersistedQuery.sha256 == sha256))  # type: ignore[arg-type]
    ).scalar_one_or_none()


async def save(session: AsyncSession, *, sha256: str, query: str, trusted: bool = False) -> None:
    """Store a document; registering it as trusted upgrades an existing automatic entry."""
    statement = insert(PersistedQuery).values(sha256=sha256, query=query, trusted=trusted)
    if trusted:
        statement = statement.on_conflict_do_update(
            index_elements=[PersistedQuery.sha256], set_={"trusted": True}
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=[PersistedQuery.sha256])
    await session.execute(statement)


async def touch(session: AsyncSession, *, sha256: str, older_than_s: float) -> bool:
    """Record a use of an automatic entry whose last recorded use is older than
    ``older_than_s``; False when no automatic entry has this hash (evicted, or trusted)."""
    result = await session.execute(
        text(
            "UPDATE persisted_queries SET last_used_at = now() "
            "WHERE sha256 = :sha256 AND NOT trusted "
            "AND last_used_at <= now() - make_interval(secs => :older_than) RETURNING true"
        ),
        {"sha256": sha256, "older_than": older_than_s},
    )
    if result.first() is not None:
        return True
    exists = await session.execute(
        text("SELECT true FROM persisted_queries WHERE sha256 = :sha256 AND NOT trusted"),
        {"sha256": sha256},
    )
    return exists.first() is not None


async def store_automatic(
    session: AsyncSession, *, sha256: str, query: str, budget: Budget, touch_after_s: float
) -> bool | None:
    """Store an automatic entry and evict what no longer fits the budget, or record a use of
    the existing entry; returns whether the entry under this hash is trusted. None when another
    store holds the turn: storing is best effort (the client sends the text again on a miss),
    and a request never waits for another's store."""
    locked = (
        await session.execute(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": STORE_LOCK_KEY}
        )
    ).scalar_one()
    if not locked:
        return None
    inserted = (
        await session.execute(
            insert(PersistedQuery)
            .values(sha256=sha256, query=query, trusted=False)
            .on_conflict_do_nothing(index_elements=[PersistedQuery.sha256])
            .returning(PersistedQuery.sha256)  # type: ignore[call-overload]
        )
    ).first()
    if inserted is None:
        # Already there: an automatic entry (its use recorded), else a trusted one.
        return not await touch(session, sha256=sha256, older_than_s=touch_after_s)
    await evict_beyond(session, budget=budget)
    return False


async def evict_beyond(session: AsyncSession, *, budget: Budget) -> int:
    """Delete the least recently used automatic entries when they are over the budget, down to
    nine tenths of it, so that the next stores do not need to rank again; returns how many.
    The totals come first (one pass over the automatic entries, whose number the budget
    bounds); the ranking, on sizes rather than texts, only when over."""
    count, size = (
        await session.execute(
            text(
                "SELECT count(*), coalesce(sum(octet_length(query)), 0) "
                "FROM persisted_queries WHERE NOT trusted"
            )
        )
    ).one()
    if count <= budget.max_entries and size <= budget.max_bytes:
        return 0
    result = await session.execute(
        text(
            # Sizes are taken before sorting (MATERIALIZED), so the sort holds no texts; the
            # tie-break in "C" order, which needs no locale.
            "WITH automatic AS MATERIALIZED ("
            " SELECT sha256, last_used_at, octet_length(query) AS size"
            " FROM persisted_queries WHERE NOT trusted) "
            "DELETE FROM persisted_queries WHERE NOT trusted AND sha256 IN ("
            " SELECT sha256 FROM ("
            "  SELECT sha256, row_number() OVER newest AS position,"
            "   sum(size) OVER newest AS bytes_so_far"
            "  FROM automatic"
            '  WINDOW newest AS (ORDER BY last_used_at DESC, sha256 COLLATE "C")'
            " ) ranked WHERE position > :keep_entries OR bytes_so_far > :keep_bytes)"
        ),
        {"keep_entries": budget.max_entries * 9 // 10, "keep_bytes": budget.max_bytes * 9 // 10},
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def delete_idle(
    session: AsyncSession, *, idle_s: float, max_query_bytes: int, batch: int
) -> int:
    """Delete up to ``batch`` automatic entries unused for ``idle_s`` seconds or larger than
    one document may be (stored before that limit existed); returns how many."""
    result = await session.execute(
        text(
            "DELETE FROM persisted_queries WHERE sha256 IN ("
            " SELECT sha256 FROM persisted_queries WHERE NOT trusted AND ("
            "  last_used_at < now() - make_interval(secs => :idle)"
            "  OR octet_length(query) > :max_query_bytes)"
            " LIMIT :batch)"
        ),
        {"idle": idle_s, "max_query_bytes": max_query_bytes, "batch": batch},
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
