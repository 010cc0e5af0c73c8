"""Audit log entries: written in the caller's transaction so they commit with the change, and
read back newest first, page by page."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, and_, func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from gql_api.models import SECRET_COLUMNS, AuditLog
from gql_api.repositories.keyset import KeysetBound, seek, trim

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


# --- reading (the auditLogs query) ---

audit_logs: Table = AuditLog.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class AuditFilter:
    actor_id: uuid.UUID | None = None
    target_id: uuid.UUID | None = None
    action: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive

    def conditions(self) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if self.actor_id is not None:
            where.append(audit_logs.c.actor_id == self.actor_id)
        if self.target_id is not None:
            where.append(audit_logs.c.target_id == self.target_id)
        if self.action is not None:
            where.append(audit_logs.c.action == self.action)
        if self.since is not None:
            where.append(audit_logs.c.created_at >= self.since)
        if self.until is not None:
            where.append(audit_logs.c.created_at < self.until)
        return where


def position(created_at: datetime, entry_id: uuid.UUID) -> KeysetBound:
    return KeysetBound(
        key=literal(created_at, audit_logs.c.created_at.type),
        id=literal(entry_id, audit_logs.c.id.type),
    )


async def list_entries(
    session: AsyncSession, *, where: AuditFilter, after: KeysetBound | None, limit: int
) -> tuple[list[Row[Any]], bool]:
    """Newest first, keyset on (created_at, id) over idx_audit_logs_created_at_id."""
    statement = seek(
        select(audit_logs).where(and_(True, *where.conditions())),
        key=audit_logs.c.created_at,
        row_id=audit_logs.c.id,
        descending=True,
        after=after,
        before=None,
        limit=limit,
        from_end=False,
    )
    rows = (await session.execute(statement)).all()
    return trim(rows, limit=limit, from_end=False)


async def count_entries(session: AsyncSession, *, where: AuditFilter) -> int:
    statement = select(func.count()).select_from(audit_logs).where(and_(True, *where.conditions()))
    return int((await session.execute(statement)).scalar_one())
