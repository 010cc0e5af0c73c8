"""The events a user service pushes, and :func:`publish`, which domain services call inside the
transaction of the change they announce.

An event travels as a PostgreSQL notification (``pg_notify``) on :data:`CHANNEL`: PostgreSQL
delivers it to every listening server process when the transaction commits, and never when it
rolls back. The payload names ids and field names only (no rows, no secrets), so it stays far
below NOTIFY's 8,000-byte limit (:data:`MAX_FIELDS` names of at most :data:`MAX_FIELD_CHARS`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from gql_api.repositories import notifications

CHANNEL = "gql_api_events"
MAX_FIELDS = 40
MAX_FIELD_CHARS = 64

SESSION_CREATED = "session.created"
SESSION_REVOKED = "session.revoked"
SESSION_EXPIRED = "session.expired"  # local: a socket's own session reached its end
USER_CREATED = "user.created"
USER_UPDATED = "user.updated"
USER_DEACTIVATED = "user.deactivated"
USER_DELETED = "user.deleted"
RESYNC = "resync"  # local: the listener missed events while it reconnected
KINDS = frozenset(
    {
        SESSION_CREATED,
        SESSION_REVOKED,
        SESSION_EXPIRED,
        USER_CREATED,
        USER_UPDATED,
        USER_DEACTIVATED,
        USER_DELETED,
        RESYNC,
    }
)
USER_KINDS = frozenset({USER_CREATED, USER_UPDATED, USER_DEACTIVATED, USER_DELETED})


@dataclass(frozen=True)
class Event:
    kind: str
    user_id: uuid.UUID | None = None
    # SESSION_REVOKED: the one session, or None for several of the user's sessions at once
    # (all but ``except_session_id``): each socket then re-checks its own.
    session_id: uuid.UUID | None = None
    except_session_id: uuid.UUID | None = None
    reason: str | None = None
    fields: tuple[str, ...] = ()

    def to_payload(self) -> str:
        data: dict[str, Any] = {"k": self.kind}
        for key, value in (
            ("u", self.user_id),
            ("s", self.session_id),
            ("x", self.except_session_id),
            ("r", self.reason),
        ):
            if value is not None:
                data[key] = str(value)
        if self.fields:
            data["f"] = [name[:MAX_FIELD_CHARS] for name in self.fields[:MAX_FIELDS]]
        return orjson.dumps(data).decode()

    @classmethod
    def from_payload(cls, payload: str) -> Event | None:
        """The event, or None for a payload this version does not understand."""
        try:
            data = orjson.loads(payload)
            kind = data["k"]
            if kind not in KINDS:
                return None
            return cls(
                kind=kind,
                user_id=_uuid(data.get("u")),
                session_id=_uuid(data.get("s")),
                except_session_id=_uuid(data.get("x")),
                reason=data.get("r"),
                fields=tuple(str(name) for name in data.get("f", ())),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return None


def _uuid(value: Any) -> uuid.UUID | None:
    return None if value is None else uuid.UUID(str(value))


def session_created(user_id: uuid.UUID, session_id: uuid.UUID) -> Event:
    return Event(SESSION_CREATED, user_id=user_id, session_id=session_id)


def sessions_revoked(
    user_id: uuid.UUID,
    *,
    reason: str,
    session_id: uuid.UUID | None = None,
    except_session_id: uuid.UUID | None = None,
) -> Event:
    return Event(
        SESSION_REVOKED,
        user_id=user_id,
        session_id=session_id,
        except_session_id=except_session_id,
        reason=reason,
    )


def user_changed(kind: str, user_id: uuid.UUID, fields: Any = ()) -> Event:
    """``fields``: the names of what changed (``profile.bio``), never values."""
    assert kind in USER_KINDS
    return Event(kind, user_id=user_id, fields=tuple(sorted(str(name) for name in fields)))


async def publish(session: AsyncSession, event: Event) -> None:
    """Announce ``event`` when (and only if) the caller's transaction commits."""
    await notifications.notify(session, channel=CHANNEL, payload=event.to_payload())
