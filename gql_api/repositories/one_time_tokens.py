"""Single-use tokens (e-mail verification, password reset), stored only as their SHA-256.

Every function works inside the caller's transaction and never commits.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gql_api.models import OneTimeToken, TokenPurpose


async def create(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    purpose: TokenPurpose,
    token_hash: str,
    expires_at: datetime,
) -> None:
    await session.execute(
        insert(OneTimeToken).values(
            user_id=user_id, purpose=purpose.value, token_hash=token_hash, expires_at=expires_at
        )
    )


def _usable(purpose: TokenPurpose, token_hash: str) -> list[object]:
    return [
        OneTimeToken.token_hash == token_hash,
        OneTimeToken.purpose == purpose.value,
        OneTimeToken.used_at.is_(None),  # type: ignore[union-attr]
        OneTimeToken.expires_at > func.now(),
    ]


async def peek(
    session: AsyncSession, *, purpose: TokenPurpose, token_hash: str
) -> uuid.UUID | None:
    """The user a usable token belongs to, without using it up."""
    statement = select(col(OneTimeToken.user_id)).where(*_usable(purpose, token_hash))  # type: ignore[arg-type]
    return (await session.execute(statement)).scalar_one_or_none()


async def consume(
    session: AsyncSession, *, purpose: TokenPurpose, token_hash: str
) -> uuid.UUID | None:
    """Use the token up and return its user; None if unknown, expired or already used.

    One conditional UPDATE: of two concurrent uses exactly one gets the user.
    """
    statement = (
        update(OneTimeToken)
        .where(*_usable(purpose, token_hash))  # type: ignore[arg-type]
        .values(used_at=func.now())
        .returning(col(OneTimeToken.user_id))
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def invalidate_for_user(
    session: AsyncSession, *, user_id: uuid.UUID, purpose: TokenPurpose
) -> int:
    """Use up every outstanding token of this purpose (a newer one was issued, or it was used)."""
    result = await session.execute(
        update(OneTimeToken)
        .where(
            OneTimeToken.user_id == user_id,  # type: ignore[arg-type]
            OneTimeToken.purpose == purpose.value,  # type: ignore[arg-type]
            OneTimeToken.used_at.is_(None),  # type: ignore[union-attr]
        )
        .values(used_at=func.now())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


_DELETE_SPENT = text(
    "DELETE FROM one_time_tokens WHERE id IN (SELECT id FROM one_time_tokens "
    "WHERE expires_at < now() OR used_at IS NOT NULL LIMIT :batch)"
)


async def delete_spent(session: AsyncSession, *, batch: int) -> int:
    """At most ``batch`` tokens that expired or were used (gql_api.ops.maintenance)."""
    result = await session.execute(_DELETE_SPENT, {"batch": batch})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
