"""Session policy: starting a session, refreshing it (rotation, grace, reuse, idle timeout).

Refresh tokens
--------------
The first refresh token of a session is 256 random bits. Each refresh replaces it with the next
one, ``HMAC-SHA256(key, previous token)``, where the key is derived from the JWT secret. Only
SHA-256 hashes are stored (``token_hash`` for the current token, ``previous_token_hash`` for the
one it replaced). Deriving the next token instead of drawing a new one is what lets two
concurrent refreshes with the same token both succeed although the server cannot read a token
back from its hash:

* the first refresh (row found by ``token_hash``, locked ``FOR UPDATE``) rotates: the old hash
  moves to ``previous_token_hash`` and ``rotated_at`` is set;
* a second refresh with the same old token inside ``refresh_reuse_grace`` of ``rotated_at``
  (row found by ``previous_token_hash``) recomputes the *same* next token and gets it with a new
  access token, without rotating again. Both callers end up holding the one current token, so
  whichever one a client keeps stays valid and neither can later trip reuse detection.
* the old token presented after the grace window is a replay: the whole session is revoked
  (``refresh_reuse``) and the event audited.

The derived tokens are as unpredictable as the first (256 bits) to anyone who lacks either the
previous token or the server key. A token two or more rotations old matches nothing and is
simply refused.

A user has at most ``max_sessions_per_user`` live sessions: signing in on one more device
revokes the least recently used one. Sessions end at ``expires_at`` (``session_lifetime`` after
login; refreshing does not extend it) or when unused for ``session_idle_timeout`` (checked at
refresh time; access tokens are short-lived and keep the single indexed look-up of
``auth.current``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gql_api.config import AuthSettings
from gql_api.db import Database
from gql_api.errors import Unauthenticated
from gql_api.models import User, UserSession, UserStatus
from gql_api.realtime import events as realtime
from gql_api.repositories import sessions as session_repo
from gql_api.repositories import users as user_repo

from .events import RequestMeta, record
from .tokens import hash_token, issue_access_token, new_opaque_token

TOKEN_TYPE = "Bearer"


@dataclass(frozen=True)
class IssuedTokens:
    """What a sign-in, refresh or password change hands back to the client."""

    access_token: str
    refresh_token: str
    expires_in: int
    user: User
    session: UserSession
    token_type: str = TOKEN_TYPE


def next_refresh_token(settings: AuthSettings, token: str) -> str:
    """The token that replaces ``token`` at its rotation (see the module docstring)."""
    assert settings.jwt_secret, "the JWT secret is set at start-up"
    key = hmac.new(settings.jwt_secret.encode(), b"gql_api refresh-token rotation", "sha256")
    digest = hmac.new(key.digest(), token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def issue(
    settings: AuthSettings, *, user: User, row: UserSession, refresh_token: str
) -> IssuedTokens:
    assert user.id is not None and row.id is not None
    access, ttl = issue_access_token(settings, user_id=user.id, session_id=row.id, role=user.role)
    return IssuedTokens(
        access_token=access, refresh_token=refresh_token, expires_in=ttl, user=user, session=row
    )


async def start(
    session: AsyncSession,
    settings: AuthSettings,
    *,
    user: User,
    meta: RequestMeta,
    device_info: dict[str, Any] | None = None,
) -> IssuedTokens:
    """A new session for ``user`` in the caller's transaction, with its first tokens."""
    assert user.id is not None
    refresh_token = new_opaque_token()
    row = await session_repo.create(
        session,
        user_id=user.id,
        token_hash=hash_token(refresh_token),
        expires_at=datetime.now(UTC) + settings.session_lifetime,
        device_info=device_info,
        ip_address=meta.ip_address,
        user_agent=meta.user_agent,
    )
    # Signing in on one device too many ends the least recently used session.
    ended = await session_repo.revoke_least_recently_used(
        session, user_id=user.id, keep=settings.max_sessions_per_user, reason="session_limit"
    )
    assert row.id is not None
    if ended:  # which one is not known here: each of the user's sockets checks its own
        await realtime.publish(
            session,
            realtime.sessions_revoked(user.id, reason="session_limit", except_session_id=row.id),
        )
    await realtime.publish(session, realtime.session_created(user.id, row.id))
    return issue(settings, user=user, row=row, refresh_token=refresh_token)


async def replace_refresh_token(
    session: AsyncSession, settings: AuthSettings, *, user: User, row: UserSession
) -> IssuedTokens:
    """Fresh random tokens for an existing session; the old refresh token stops working at once
    (no grace: used after a password change)."""
    assert row.id is not None
    refresh_token = new_opaque_token()
    row = await session_repo.rotate(
        session, session_id=row.id, old_hash=None, new_hash=hash_token(refresh_token)
    )
    return issue(settings, user=user, row=row, refresh_token=refresh_token)


class _Outcome(Enum):
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    IDLE = "idle"
    REUSED = "reused"


def _refusal(outcome: _Outcome) -> Unauthenticated:
    messages = {
        _Outcome.UNKNOWN: "Invalid refresh token",
        _Outcome.EXPIRED: "Session expired or revoked; sign in again",
        _Outcome.IDLE: "Session expired after inactivity; sign in again",
        _Outcome.REUSED: "Refresh token reused; the session has been revoked for safety",
    }
    return Unauthenticated(messages[outcome])


async def refresh(
    db: Database, settings: AuthSettings, *, refresh_token: str, meta: RequestMeta
) -> IssuedTokens:
    """Rotate the session's refresh token (see the module docstring) or raise
    :class:`Unauthenticated`. Revocations for reuse and idleness are committed before raising."""
    presented = hash_token(refresh_token)
    outcome: _Outcome | None = None
    async with db.transaction() as session:
        row = await session_repo.lock_by_refresh_hash(session, token_hash=presented)
        if row is None or row.id is None:
            raise _refusal(_Outcome.UNKNOWN)
        session_id = row.id
        now = datetime.now(UTC)
        user = await user_repo.get_by_id(session, user_id=row.user_id)
        if (
            row.revoked_at is not None
            or row.expires_at <= now
            or user is None
            or user.status != UserStatus.ACTIVE.value
        ):
            raise _refusal(_Outcome.EXPIRED)
        if row.last_used_at is not None and row.last_used_at + settings.session_idle_timeout < now:
            outcome = _Outcome.IDLE
            await _revoke(session, row, reason="idle_timeout")
        elif row.token_hash == presented:
            next_token = next_refresh_token(settings, refresh_token)
            row = await session_repo.rotate(
                session, session_id=session_id, old_hash=presented, new_hash=hash_token(next_token)
            )
            await _record_refresh(session, meta, user=user, session_id=session_id)
            return issue(settings, user=user, row=row, refresh_token=next_token)
        else:  # the previous token: a concurrent refresh inside the grace window, or a replay
            next_token = next_refresh_token(settings, refresh_token)
            in_grace = (
                row.rotated_at is not None and now - row.rotated_at <= settings.refresh_reuse_grace
            )
            if in_grace and hash_token(next_token) == row.token_hash:
                row = await session_repo.touch(session, session_id=session_id)
                await _record_refresh(
                    session, meta, user=user, session_id=session_id, within_grace=True
                )
                return issue(settings, user=user, row=row, refresh_token=next_token)
            outcome = _Outcome.REUSED
            await _revoke(session, row, reason="refresh_reuse")
            await record(
                session,
                meta,
                "auth.refresh_reuse_detected",
                target_id=user.id,
                changes={"session_id": str(session_id)},
            )
    assert outcome is not None
    raise _refusal(outcome)


async def _revoke(session: AsyncSession, row: UserSession, *, reason: str) -> None:
    """End the session and tell its open sockets (``gql_api.realtime``)."""
    assert row.id is not None
    await session_repo.revoke(session, session_id=row.id, reason=reason)
    await realtime.publish(
        session, realtime.sessions_revoked(row.user_id, reason=reason, session_id=row.id)
    )


async def _record_refresh(
    session: AsyncSession,
    meta: RequestMeta,
    *,
    user: User,
    session_id: uuid.UUID,
    within_grace: bool = False,
) -> None:
    """The audit entry of a refresh that issued tokens (``within_grace``: the second of two
    concurrent ones, which did not rotate again)."""
    changes: dict[str, Any] = {"session_id": str(session_id)}
    if within_grace:
        changes["within_grace"] = True
    await record(
        session, meta, "auth.refresh", actor_id=user.id, target_id=user.id, changes=changes
    )
