"""Persisted GraphQL documents by SHA-256."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gql_api.models import PersistedQuery


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
