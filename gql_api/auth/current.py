"""Who is calling: the bearer token checked against its session, in one indexed lookup (or
remembered from a recent one, :mod:`.session_cache`).

Every authenticated request verifies the JWT and then that its session is not revoked or expired
and that its user is still active, so logout, password change, deactivation and admin revocation
take effect on the very next request (on another replica: once PostgreSQL's notification of the
change has reached it, see :mod:`.session_cache`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from gql_api.config import AuthSettings
from gql_api.errors import Unauthenticated
from gql_api.observability import metrics
from gql_api.repositories import mfa as mfa_repo
from gql_api.repositories import sessions as session_repo
from gql_api.repositories.row_source import RowSource

from .session_cache import SessionCache
from .tokens import InvalidToken, decode_access_token


@dataclass(frozen=True)
class Viewer:
    # The user's public columns (models.USER_PUBLIC_COLUMNS: no password hash), read by name
    # as attributes, as on the ORM model.
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


async def authenticate(
    db: RowSource, settings: AuthSettings, token: str, *, cache: SessionCache | None = None
) -> Viewer:
    """The viewer behind an access token, or :class:`Unauthenticated`. With ``cache``, a check
    made recently and not invalidated since is not made again (:mod:`.session_cache`)."""
    try:
        claims = decode_access_token(settings, token)
    except InvalidToken:
        raise Unauthenticated("Invalid or expired access token") from None
    ticket = None
    if cache is not None:
        remembered = cache.viewer(claims.session_id, claims.user_id)
        if remembered is not None:
            metrics.SESSION_CHECKS_CACHED.inc()
            return remembered
        ticket = cache.ticket()
    metrics.SESSION_CHECKS_READ.inc()
    user = await session_repo.user_of_live_session(
        db, session_id=claims.session_id, user_id=claims.user_id
    )
    if user is None:
        raise Unauthenticated("Session revoked or expired")
    enrol = False
    if settings.require_mfa_for_admins and user.role == "admin":
        enrol = not await mfa_repo.confirmed_factor_exists(db, user_id=claims.user_id)
    viewer = Viewer(user=user, session_id=claims.session_id, mfa_enrollment_required=enrol)
    if cache is not None:
        cache.keep(ticket, viewer, user.session_expires_at)
    return viewer


async def viewer_password_hash(db: RowSource, viewer: Viewer) -> str:
    """The viewer's password hash, for a check of its password (the viewer carries none);
    :class:`Unauthenticated` when its session ended since the request began, as the next
    request's bearer check would say (a concurrent password change from the same session: its
    old password is not "incorrect", and not a failed attempt)."""
    stored = await session_repo.password_hash_of_live_session(
        db, session_id=viewer.session_id, user_id=viewer.user.id
    )
    if stored is None:
        raise Unauthenticated("Session revoked or expired")
    return stored
