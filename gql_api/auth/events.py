"""Where an auth event comes from, and its audit entry (written in the caller's transaction)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gql_api.repositories import audit

USER_AGENT_MAX_CHARS = 512


@dataclass(frozen=True)
class RequestMeta:
    """The caller's address (after trusted proxies), user agent and request id."""

    ip_address: str | None = None
    user_agent: str | None = None
    request_id: str | None = None

    def __post_init__(self) -> None:
        if self.user_agent is not None:
            # Stored with every session and audit row: bounded, and no NUL (text cannot hold it).
            clean = self.user_agent.replace("\x00", "")[:USER_AGENT_MAX_CHARS]
            object.__setattr__(self, "user_agent", clean)


async def record(
    session: AsyncSession,
    meta: RequestMeta,
    action: str,
    *,
    actor_id: uuid.UUID | None = None,
    target_id: uuid.UUID | None = None,
    target_type: str = "user",
    changes: dict[str, Any] | None = None,
) -> None:
    await audit.record(
        session,
        action=action,
        actor_id=actor_id,
        target_type=target_type if target_id is not None else None,
        target_id=target_id,
        changes=changes,
        ip_address=meta.ip_address,
        user_agent=meta.user_agent,
        request_id=meta.request_id,
    )
