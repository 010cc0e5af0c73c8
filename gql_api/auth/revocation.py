"""Ending sessions: logout, logout everywhere, revoking one session or all of a user's, and
lifting login limits. Each change and its audit entry commit in one transaction; the next
request with a revoked session's access token is refused (``auth.current``)."""

from __future__ import annotations

import uuid

from gql_api.db import Database
from gql_api.errors import NotFound
from gql_api.realtime import events as realtime
from gql_api.repositories import login_attempts
from gql_api.repositories import sessions as session_repo
from gql_api.repositories import users as user_repo

from .current import Viewer
from .events import RequestMeta, record


async def logout(db: Database, *, viewer: Viewer, meta: RequestMeta) -> bool:
    async with db.transaction() as session:
        revoked = await session_repo.revoke(session, session_id=viewer.session_id, reason="logout")
        if revoked:
            await realtime.publish(
                session,
                realtime.sessions_revoked(
                    viewer.user.id, reason="logout", session_id=viewer.session_id
                ),
            )
        await record(
            session,
            meta,
            "auth.logout",
            actor_id=viewer.user.id,
            target_id=viewer.user.id,
            changes={"session_id": str(viewer.session_id)},
        )
    return revoked


async def logout_all(db: Database, *, viewer: Viewer, keep_current: bool, meta: RequestMeta) -> int:
    assert viewer.user.id is not None
    async with db.transaction() as session:
        count = await session_repo.revoke_all_for_user(
            session,
            user_id=viewer.user.id,
            reason="logout_all",
            except_session_id=viewer.session_id if keep_current else None,
        )
        if count:
            await realtime.publish(
                session,
                realtime.sessions_revoked(
                    viewer.user.id,
                    reason="logout_all",
                    except_session_id=viewer.session_id if keep_current else None,
                ),
            )
        await record(
            session,
            meta,
            "auth.logout_all",
            actor_id=viewer.user.id,
            target_id=viewer.user.id,
            changes={"revoked_sessions": count, "keep_current": keep_current},
        )
    return count


async def revoke_session(
    db: Database, *, viewer: Viewer, session_id: uuid.UUID, meta: RequestMeta
) -> bool:
    """Revoke one session: the viewer's own, or anyone's for an admin. Another user's session
    is NOT_FOUND for a non-admin, so ids cannot be probed. False when already revoked."""
    async with db.transaction() as session:
        row = await session_repo.get(session, session_id=session_id)
        if row is None or (row.user_id != viewer.user.id and not viewer.is_admin):
            raise NotFound("Session not found")
        reason = "revoked" if row.user_id == viewer.user.id else "admin_revoked"
        revoked = await session_repo.revoke(session, session_id=session_id, reason=reason)
        if revoked:
            await realtime.publish(
                session,
                realtime.sessions_revoked(row.user_id, reason=reason, session_id=session_id),
            )
            await record(
                session,
                meta,
                "auth.session_revoked",
                actor_id=viewer.user.id,
                target_id=row.user_id,
                changes={"session_id": str(session_id)},
            )
    return revoked


async def revoke_user_sessions(
    db: Database, *, viewer: Viewer, user_id: uuid.UUID, meta: RequestMeta
) -> int:
    """Admin: revoke every live session of a user; returns how many."""
    async with db.transaction() as session:
        if await user_repo.get_by_id(session, user_id=user_id) is None:
            raise NotFound("User not found")
        count = await session_repo.revoke_all_for_user(
            session, user_id=user_id, reason="admin_revoked"
        )
        if count:
            await realtime.publish(
                session, realtime.sessions_revoked(user_id, reason="admin_revoked")
            )
        await record(
            session,
            meta,
            "auth.session_revoked",
            actor_id=viewer.user.id,
            target_id=user_id,
            changes={"revoked_sessions": count, "all": True},
        )
    return count


async def clear_login_attempts(
    db: Database,
    *,
    viewer: Viewer,
    email: str | None,
    ip_address: str | None,
    meta: RequestMeta,
) -> int:
    """Admin: forget the recorded attempts of an e-mail and/or an address, lifting their limits."""
    async with db.transaction() as session:
        count = await login_attempts.clear(session, email=email, ip_address=ip_address)
        await record(
            session,
            meta,
            "auth.login_attempts_cleared",
            actor_id=viewer.user.id,
            changes={"email": email, "ip_address": ip_address, "cleared": count},
        )
    return count
