"""User sessions (one row per signed-in device): creation, refresh look-up, rotation, revocation,
and the hot reads of every request (whose session is this bearer's, a page's active sessions).

Functions taking an ``AsyncSession`` work inside the caller's transaction and never commit; the
ones taking a ``RowSource`` run one autocommit statement.
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gql_api.models import (
    USER_PUBLIC_COLUMNS,
    User,
    UserSession,
    UserStatus,
    public_columns_among,
)
from gql_api.repositories.json_text import JsonField, json_list
from gql_api.repositories.row_source import RowSource, any_of_ids

_users: Table = User.__table__  # type: ignore[attr-defined]
_sessions: Table = UserSession.__table__  # type: ignore[attr-defined]

# Built once (SQLAlchemy memoises a constant statement's cache key, so the direct reads find its
# compiled form at once). One indexed lookup: the session's primary key.
# A session that still authenticates: not revoked, not expired, its user active.
_LIVE_SESSION = (
    _sessions.c.id == bindparam("session_id"),
    _sessions.c.user_id == bindparam("user_id"),
    _sessions.c.revoked_at.is_(None),
    _sessions.c.expires_at > func.now(),
    _users.c.status == UserStatus.ACTIVE.value,
)
# With the session's end, past which a remembered check is not trusted (auth.session_cache).
_USER_OF_LIVE_SESSION = (
    select(*USER_PUBLIC_COLUMNS, _sessions.c.expires_at.label("session_expires_at"))
    .join(_sessions, _sessions.c.user_id == _users.c.id)
    .where(*_LIVE_SESSION)
)
# A signed-in caller confirming its password: the hash, only while the caller's session is
# live, in one statement. A password change replaces the hash and revokes the session in one
# transaction, so a concurrent change from the same session leaves the caller the old hash with
# a live session, or no row: never the new hash to compare its old password with.
_PASSWORD_HASH_OF_LIVE_SESSION = (
    select(_users.c.password_hash)
    .join(_sessions, _sessions.c.user_id == _users.c.id)
    .where(*_LIVE_SESSION)
)
_LIVE_SESSION_EXPIRY = (
    select(_sessions.c.expires_at)
    .join(_users, _sessions.c.user_id == _users.c.id)
    .where(*_LIVE_SESSION)
)


# Newest first; the id breaks ties (a sign-in's rows share one transaction's now()), so the
# rows and the JSON of the same sessions come in one order.
_NEWEST_FIRST = (_sessions.c.created_at.desc(), _sessions.c.id.desc())
_ACTIVE_OF_USERS = (
    _sessions.c.user_id == any_of_ids(),
    _sessions.c.revoked_at.is_(None),
    _sessions.c.expires_at > func.now(),
)


# One statement per column set (or JSON selection) a compiled selection reads (few: they come
# from documents' selections of Session); built once each, so its SQL and cache key are made
# once.
@functools.lru_cache(maxsize=64)
def _active_by_user_ids(columns: frozenset[str] | None) -> Any:
    return (
        select(*public_columns_among(UserSession, columns, keys=("user_id",)))
        .where(*_ACTIVE_OF_USERS)
        .order_by(*_NEWEST_FIRST)
    )


@functools.lru_cache(maxsize=64)
def _active_json_by_user_ids(fields: tuple[JsonField, ...]) -> Any:
    return (
        select(_sessions.c.user_id, json_list(_sessions, fields, _NEWEST_FIRST).label("json"))
        .where(*_ACTIVE_OF_USERS)
        .group_by(_sessions.c.user_id)
    )


async def user_of_live_session(
    db: RowSource, *, session_id: uuid.UUID, user_id: uuid.UUID
) -> Any | None:
    """The user's public columns and ``session_expires_at`` when the session is neither revoked
    nor expired, belongs to that user and the user is active; None otherwise. Every
    authenticated request runs this, unless its check is remembered (``auth.session_cache``)."""
    rows = await db.fetch(_USER_OF_LIVE_SESSION, {"session_id": session_id, "user_id": user_id})
    return rows[0] if rows else None


async def password_hash_of_live_session(
    db: RowSource, *, session_id: uuid.UUID, user_id: uuid.UUID
) -> str | None:
    """The one read of a password hash outside login (the per-request viewer lookup selects
    only public columns); None when the session no longer authenticates."""
    rows = await db.fetch(
        _PASSWORD_HASH_OF_LIVE_SESSION, {"session_id": session_id, "user_id": user_id}
    )
    return rows[0].password_hash if rows else None


async def live_session_expiry(
    db: RowSource, *, session_id: uuid.UUID, user_id: uuid.UUID
) -> datetime | None:
    """When the session expires, if it is live now (as :func:`user_of_live_session` decides);
    None otherwise. A realtime socket re-checks its session with this."""
    rows = await db.fetch(_LIVE_SESSION_EXPIRY, {"session_id": session_id, "user_id": user_id})
    return rows[0].expires_at if rows else None


async def active_by_user_ids(
    db: RowSource, *, user_ids: list[uuid.UUID], columns: frozenset[str] | None = None
) -> list[Any]:
    """The active sessions (no token hashes) of these users, newest first: one statement.
    ``columns``: the public columns to read besides ``user_id`` (all for None)."""
    return await db.fetch(_active_by_user_ids(columns), {"ids": user_ids})


async def active_json_by_user_ids(
    db: RowSource, *, user_ids: list[uuid.UUID], fields: tuple[JsonField, ...]
) -> list[Any]:
    """Per user with active sessions, ``(user_id, json)``: the text of the list of its active
    sessions as ``fields`` show them, newest first (``gql_api.repositories.json_text``)."""
    return await db.fetch(_active_json_by_user_ids(fields), {"ids": user_ids})


async def create(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    token_hash: str,
    expires_at: datetime,
    device_info: dict[str, Any] | None = None,
    ip_address: str | None = None,
    user_agent: str | None = None,
) -> UserSession:
    statement = (
        insert(UserSession)
        .values(
            user_id=user_id,
            token_hash=token_hash,
            expires_at=expires_at,
            device_info=device_info,
            ip_address=ip_address,
            user_agent=user_agent,
        )
        .returning(UserSession)
    )
    return (await session.execute(statement)).scalar_one()


async def get(session: AsyncSession, *, session_id: uuid.UUID) -> UserSession | None:
    return await session.get(UserSession, session_id)


async def lock_by_refresh_hash(session: AsyncSession, *, token_hash: str) -> UserSession | None:
    """The session whose current or previous refresh token has this hash, locked FOR UPDATE so
    that concurrent refreshes of one session run one after the other."""
    statement = (
        select(UserSession)
        .where(
            or_(
                UserSession.token_hash == token_hash,  # type: ignore[arg-type]
                UserSession.previous_token_hash == token_hash,  # type: ignore[arg-type]
            )
        )
        .order_by(UserSession.rotated_at.desc().nulls_last())  # type: ignore[union-attr]
        .limit(1)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def rotate(
    session: AsyncSession, *, session_id: uuid.UUID, old_hash: str | None, new_hash: str
) -> UserSession:
    """Make ``new_hash`` current; ``old_hash`` stays recognisable (grace window, reuse)."""
    statement = (
        update(UserSession)
        .where(UserSession.id == session_id)  # type: ignore[arg-type]
        .values(
            token_hash=new_hash,
            previous_token_hash=old_hash,
            rotated_at=func.now(),
            last_used_at=func.now(),
        )
        .returning(UserSession)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one()


async def touch(session: AsyncSession, *, session_id: uuid.UUID) -> UserSession:
    statement = (
        update(UserSession)
        .where(UserSession.id == session_id)  # type: ignore[arg-type]
        .values(last_used_at=func.now())
        .returning(UserSession)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one()


async def revoke(session: AsyncSession, *, session_id: uuid.UUID, reason: str) -> bool:
    """True when this call revoked it; False when it was unknown or already revoked."""
    result = await session.execute(
        update(UserSession)
        .where(
            UserSession.id == session_id,  # type: ignore[arg-type]
            UserSession.revoked_at.is_(None),  # type: ignore[union-attr]
        )
        .values(revoked_at=func.now(), revoked_reason=reason)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def revoke_all_for_user(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    reason: str,
    except_session_id: uuid.UUID | None = None,
) -> int:
    """Revoke every live session of the user (but ``except_session_id``); returns how many."""
    conditions = [
        UserSession.user_id == user_id,
        UserSession.revoked_at.is_(None),  # type: ignore[union-attr]
        UserSession.expires_at > func.now(),
    ]
    if except_session_id is not None:
        conditions.append(UserSession.id != except_session_id)
    result = await session.execute(
        update(UserSession)
        .where(*conditions)  # type: ignore[arg-type]
        .values(revoked_at=func.now(), revoked_reason=reason)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def revoke_least_recently_used(
    session: AsyncSession, *, user_id: uuid.UUID, keep: int, reason: str
) -> int:
    """Revoke the user's live sessions beyond the ``keep`` most recently used; returns how many."""
    live = (
        select(col(UserSession.id))
        .where(
            UserSession.user_id == user_id,  # type: ignore[arg-type]
            UserSession.revoked_at.is_(None),  # type: ignore[union-attr]
            UserSession.expires_at > func.now(),  # type: ignore[arg-type]
        )
        .order_by(
            UserSession.last_used_at.desc(),  # type: ignore[union-attr]
            UserSession.created_at.desc(),  # type: ignore[union-attr]
        )
        .offset(keep)
    )
    result = await session.execute(
        update(UserSession)
        .where(UserSession.id.in_(live))  # type: ignore[union-attr]
        .values(revoked_at=func.now(), revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


# --- housekeeping (gql_api.ops.maintenance) ---

_DELETE_EXPIRED = text(
    "DELETE FROM user_sessions WHERE id IN (SELECT id FROM user_sessions "
    "WHERE expires_at < now() OR revoked_at < now() - make_interval(secs => :keep) "
    "LIMIT :batch)"
)


async def delete_expired(session: AsyncSession, *, keep_revoked_s: float, batch: int) -> int:
    """At most ``batch`` sessions that expired, or were revoked more than ``keep_revoked_s``
    ago (kept meanwhile for refresh-token reuse detection); returns how many went."""
    result = await session.execute(_DELETE_EXPIRED, {"keep": keep_revoked_s, "batch": batch})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
