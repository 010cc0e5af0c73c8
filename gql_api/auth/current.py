"""Who is calling: the bearer token checked against its session, in one indexed lookup.

Every authenticated request verifies the JWT and then that its session is not revoked or expired
and that its user is still active, so logout, password change, deactivation and admin revocation
take effect on the very next request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select

from gql_api.config import AuthSettings
from gql_api.db import Database
from gql_api.graphql.errors import Unauthenticated
from gql_api.models import User, UserSession, UserStatus

from .tokens import InvalidToken, decode_access_token


@dataclass(frozen=True)
class Viewer:
    user: User
    session_id: uuid.UUID

    @property
    def is_admin(self) -> bool:
        return self.user.role == "admin"


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
    statement = (
        select(User)
        .join(UserSession, UserSession.user_id == User.id)  # type: ignore[arg-type]
        .where(
            UserSession.id == claims.session_id,  # type: ignore[arg-type]
            UserSession.user_id == claims.user_id,  # type: ignore[arg-type]
            UserSession.revoked_at.is_(None),  # type: ignore[union-attr]
            UserSession.expires_at > func.now(),  # type: ignore[arg-type]
            User.status == UserStatus.ACTIVE.value,  # type: ignore[arg-type]
        )
    )
    async with db.session() as session:
        user = (await session.execute(statement)).scalar_one_or_none()
    if user is None:
        raise Unauthenticated("Session revoked or expired")
    return Viewer(user=user, session_id=claims.session_id)
