"""Audit log entries, written in the caller's transaction so they commit with the change."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gql_api.models import SECRET_COLUMNS, AuditLog

_SECRET_WORDS = ("password", "token", "secret", "hash")


def _scrub(changes: dict[str, Any]) -> dict[str, Any]:
    """Never store secrets: keys that name one keep only the fact that they changed."""
    clean: dict[str, Any] = {}
    for key, value in changes.items():
        if key in SECRET_COLUMNS or any(word in key.lower() for word in _SECRET_WORDS):
            clean[key] = "[changed]"
        elif isinstance(value, dict):
            clean[key] = _scrub(value)
        else:
            clean[key] = value
    return clean


async def record(
    session: AsyncSession,
    *,
    action: str,
    actor_id: uuid.UUID | None = None,
    target_type: str | None = None,
    target_id: uuid.UUID | None = None,
    changes: dict[str, Any] | None = None,
    ip_address: str | None = None,
    user_agent: str | None = None,
    request_id: str | None = None,
) -> None:
    await session.execute(
        insert(AuditLog).values(
            action=action,
            actor_id=actor_id,
            target_type=target_type,
            target_id=target_id,
            changes=_scrub(changes or {}),
            ip_address=ip_address,
            user_agent=user_agent,
            request_id=request_id,
        )
    )
