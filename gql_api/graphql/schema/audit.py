"""The ``auditLogs`` query (admins): who did what to whom, newest first.

A staleness-tolerant read (``db.stale_session()``): on a read replica when one serves, except
after the admin's own writes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from gql_api import validation
from gql_api.graphql.schema.context import Context
from gql_api.graphql.schema.datetimes import storable_datetime
from gql_api.graphql.schema.errors import BadUserInput
from gql_api.graphql.schema.ids import parse_uuid
from gql_api.graphql.schema.pagination import (
    Connection,
    build_connection,
    decode_cursor,
    page_window,
)
from gql_api.repositories import audit

_CURSOR_TAG = "audit:created_at:desc"


@strawberry.type
class AuditLog:
    id: strawberry.ID
    actor_id: strawberry.ID | None
    action: str
    target_type: str | None
    target_id: strawberry.ID | None
    changes: JSON
    ip_address: str | None
    user_agent: str | None
    request_id: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> AuditLog:
        return cls(
            id=strawberry.ID(str(row.id)),
            actor_id=_maybe_id(row.actor_id),
            action=row.action,
            target_type=row.target_type,
            target_id=_maybe_id(row.target_id),
            changes=row.changes,
            ip_address=str(row.ip_address) if row.ip_address is not None else None,
            user_agent=row.user_agent,
            request_id=row.request_id,
            created_at=row.created_at,
        )


def _action(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return validation.plain_text(value, max_length=64)  # the column's length
    except validation.InvalidValue as exc:
        raise BadUserInput("Invalid action", fields={"filter.action": str(exc)}) from None


def _maybe_id(value: uuid.UUID | None) -> strawberry.ID | None:
    return strawberry.ID(str(value)) if value is not None else None


@strawberry.input
class AuditLogFilter:
    actor_id: strawberry.ID | None = None
    target_id: strawberry.ID | None = None
    action: str | None = None
    since: datetime | None = strawberry.field(default=None, description="Inclusive.")
    until: datetime | None = strawberry.field(default=None, description="Exclusive.")

    def to_filter(self) -> audit.AuditFilter:
        return audit.AuditFilter(
            actor_id=parse_uuid(self.actor_id, "filter.actorId") if self.actor_id else None,
            target_id=parse_uuid(self.target_id, "filter.targetId") if self.target_id else None,
            action=_action(self.action),
            since=storable_datetime(self.since, "filter.since") if self.since is not None else None,
            until=storable_datetime(self.until, "filter.until") if self.until is not None else None,
        )


@strawberry.type
class AuditQuery:
    @strawberry.field(description="Audit entries, newest first (admins only).")
    async def audit_logs(
        self,
        info: strawberry.Info[Context, None],
        first: int | None = None,
        after: str | None = None,
        filter: AuditLogFilter | None = None,
    ) -> Connection[AuditLog]:
        info.context.require_admin()
        window = page_window(first, None, max_size=info.context.settings.graphql.max_page_size)
        where = filter.to_filter() if filter is not None else audit.AuditFilter()
        start = None
        if after is not None:
            key, entry_id = decode_cursor(after, tag=_CURSOR_TAG, kind="datetime")
            start = audit.position(key, entry_id)
        db = info.context.db
        async with db.stale_session() as session:
            rows, has_more = await audit.list_entries(
                session, where=where, after=start, limit=window.limit
            )

        async def count() -> int:
            async with db.stale_session() as session:
                return await audit.count_entries(session, where=where)

        return build_connection(
            [AuditLog.from_row(r) for r in rows],
            [(_CURSOR_TAG, r.created_at, r.id) for r in rows],
            window=window,
            has_more=has_more,
            after=after,
            before=None,
            count=count,
        )
