"""Who is calling: the bearer token checked against its session, in one indexed lookup.

Every authenticated request verifies the JWT and then that its session is not revoked or expired
and that its user is still active, so logout, password change, deactivation and admin revocation
take effect on the very next request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select

from gql_api.config import AuthSettings
from gql_api.db import Database
from gql_api.errors import Unauthenticated
from gql_api.models import User, UserMfaFactor, UserSession, UserStatus, metadata

from .tokens import InvalidToken, decode_access_token

# One indexed lookup (the session's primary key), built once; plain row, no ORM instance.
_users = metadata.tables[User.__tablename__]
_sessions = metadata.tables[UserSession.__tablename__]
VIEWER_BY_SESSION = (
    select(*_users.c)
    .join(_sessions, _sessions.c.user_id == _users.c.id)
    .where(
        _sessions.c.id == bindparam("session_id"),
        _sessions.c.user_id == bindparam("user_id"),
        _sessions.c.revoked_at.is_(None),
        _sessions.c.expires_at > func.now(),
        _users.c.status == UserStatus.ACTIVE.value,
    )
)


# Whether a user has a confirmed second factor (auth.require_mfa_for_admins; admins only).
_factors = metadata.tables[UserMfaFactor.__tablename__]
HAS_CONFIRMED_FACTOR = (
    select(_factors.c.id)
    .where(_factors.c.user_id == bindparam("user_id"), _factors.c.confirmed_at.is_not(None))
    .limit(1)
)


@dataclass(frozen=True)
class Viewer:
    # The users row (attribute access by column name, as on the ORM model).
    user: Any
    session_id: uuid.UUID
    # An admin without a second factor while auth.require_mfa_for_admins is on: it may enrol
    # one, and use no admin power until it has (Context.require_admin).
    mfa_enrollment_required: bool = False

    @property
    def is_admin(self) -> bool:
        """Admin powers: the role, and (with auth.require_mfa_for_admins) a second factor. Every
        check of admin rights reads this, so none can forget the factor."""
        return self.user.role == "admin" and not self.mfa_enrollment_required


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Malformed Authorization header: expected 'Bearer <token>'")
    return token.strip()


async def authenticate(db: Database, settings: AuthSettings, token: str) -> Viewer:
    """The viewer behind an access token, or :class:`Unauthenticated`."""
    try:
        claims = decode_access_token(settings, token)
    except InvalidToken:
        raise Unauthenticated("Invalid or expired access token") from None
    rows = await db.fetch(
        VIEWER_BY_SESSION, {"session_id": claims.session_id, "user_id": claims.user_id}
    )
    if not rows:
        raise Unauthenticated("Session revoked or expired")
    enrol = False
    if settings.require_mfa_for_admins and rows[0].role == "admin":
        enrol = not await db.fetch(HAS_CONFIRMED_FACTOR, {"user_id": claims.user_id})
    return Viewer(user=rows[0], session_id=claims.session_id, mfa_enrollment_required=enrol)
