"""Admin mutations: create, update and delete users, keeping at least one active admin.

The last-admin rule is race-safe: every change that could remove an active admin first locks
all active admin rows (``lock_active_admin_ids``), so two admins demoting each other at once run
one after the other and the second sees the first's result.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gql_api.auth.current import Viewer
from gql_api.auth.events import RequestMeta, record
from gql_api.auth.passwords import hash_password
from gql_api.config import AuthSettings
from gql_api.db import Database
from gql_api.errors import Conflict, Forbidden, NotFound
from gql_api.models import Role, User, UserProfile, UserStatus
from gql_api.realtime import events as realtime
from gql_api.repositories import mfa as mfa_repo
from gql_api.repositories import profiles as profile_repo
from gql_api.repositories import sessions as session_repo
from gql_api.repositories import users as user_repo

from .changes import diff, snapshot

USER_FIELDS = ("first_name", "last_name", "role", "status", "email_verified")
LAST_ADMIN = "This is the last active admin: promote another admin first"


@dataclass(frozen=True)
class NewUser:
    email: str
    password: str
    first_name: str
    last_name: str
    role: Role = Role.USER
    status: UserStatus = UserStatus.ACTIVE
    email_verified: bool = False
    profile: dict[str, Any] = field(default_factory=dict)


async def create_user(
    db: Database, settings: AuthSettings, *, actor: Viewer, new: NewUser, meta: RequestMeta
) -> tuple[User, UserProfile | None]:
    """The user and its profile in one transaction: if the profile cannot be written, no user
    exists. :class:`Conflict` when the e-mail is taken."""
    # Hashed before the transaction: no connection is held while bcrypt runs.
    password_hash = await hash_password(new.password, settings.bcrypt_rounds)
    async with db.transaction() as session:
        user = await user_repo.create_user(
            session,
            email=new.email,
            password_hash=password_hash,
            first_name=new.first_name,
            last_name=new.last_name,
            role=new.role,
            status=new.status,
        )
        if user is None or user.id is None:
            raise Conflict(
                "An account with this email already exists",
                fields={"email": "is already registered"},
            )
        user_id = user.id
        if new.email_verified:
            verified = {"email_verified": True}  # email_verified_at follows (update_fields)
            user = await user_repo.update_fields(session, user_id=user_id, values=verified) or user
        profile = None
        if new.profile:
            profile = await profile_repo.upsert(session, user_id=user_id, values=new.profile)
        fields = {
            "email": new.email,
            "first_name": new.first_name,
            "last_name": new.last_name,
            "role": new.role.value,
            "status": new.status.value,
            "email_verified": new.email_verified,
        }
        changes = diff({}, fields) | diff({}, new.profile, prefix="profile.")
        await realtime.publish(
            session, realtime.user_changed(realtime.USER_CREATED, user_id, changes)
        )
        changes["password"] = "[changed]"  # never the password, nor its hash
        await record(
            session,
            meta,
            "user.created",
            actor_id=actor.user.id,
            target_id=user_id,
            changes=changes,
        )
    return user, profile


async def update_user(
    db: Database, *, actor: Viewer, user_id: uuid.UUID, values: dict[str, Any], meta: RequestMeta
) -> User:
    """Change names, role, status, e-mail verification. Deactivating revokes every session of
    the user (``set_status``). NOT_FOUND, or CONFLICT for the last active admin."""
    async with db.transaction() as session:
        admins = None
        if "role" in values or "status" in values:
            admins = await _lock_admins(session, actor)
        user = await user_repo.get_for_update(session, user_id=user_id)
        if user is None:
            raise NotFound("User not found", fields={"id": "no such user"})
        before = snapshot(user, USER_FIELDS)
        after = {**before, **values}
        if admins is not None and _removes_admin(before, after):
            _require_another_admin(admins, user_id)
        changes = diff(before, values)
        plain = {k: v for k, v in values.items() if k != "status" and k in changes}
        if plain:
            user = await user_repo.update_fields(session, user_id=user_id, values=plain) or user
        if "status" in changes:
            status = UserStatus(values["status"])
            user = await user_repo.set_status(session, user_id=user_id, status=status) or user
        if changes:
            # Deactivating also ended the user's sessions (set_status): its sockets close.
            deactivated = changes.get("status", {}).get("new") == UserStatus.INACTIVE.value
            kind = realtime.USER_DEACTIVATED if deactivated else realtime.USER_UPDATED
            await realtime.publish(session, realtime.user_changed(kind, user_id, changes))
        await record(
            session,
            meta,
            "user.updated",
            actor_id=actor.user.id,
            target_id=user_id,
            changes=changes,
        )
    return user


async def delete_user(
    db: Database, *, actor: Viewer, user_id: uuid.UUID, meta: RequestMeta
) -> None:
    """Delete the user with its profile and sessions; the audit entry (which outlives it) keeps
    who it was. NOT_FOUND, or CONFLICT for the last active admin."""
    async with db.transaction() as session:
        admins = await _lock_admins(session, actor)
        user = await user_repo.get_for_update(session, user_id=user_id)
        if user is None:
            raise NotFound("User not found", fields={"id": "no such user"})
        if user_id in admins:
            _require_another_admin(admins, user_id)
        await user_repo.delete_user(session, user_id=user_id)
        await realtime.publish(session, realtime.user_changed(realtime.USER_DELETED, user_id))
        who = ("email", "first_name", "last_name", "role", "status")
        gone = snapshot(user, who)
        await record(
            session,
            meta,
            "user.deleted",
            actor_id=actor.user.id,
            target_id=user_id,
            changes=diff(gone, dict.fromkeys(gone)),
        )


async def reset_user_mfa(
    db: Database, *, actor: Viewer, user_id: uuid.UUID, meta: RequestMeta
) -> int:
    """Admin: remove every factor, recovery code and open challenge of a user and end all its
    sessions; returns the factors removed. NOT_FOUND for an unknown user."""
    async with db.transaction() as session:
        if await user_repo.get_by_id(session, user_id=user_id) is None:
            raise NotFound("User not found", fields={"userId": "no such user"})
        removed = await mfa_repo.delete_all(session, user_id=user_id)
        revoked = await session_repo.revoke_all_for_user(
            session, user_id=user_id, reason="mfa_reset"
        )
        if revoked:
            await realtime.publish(session, realtime.sessions_revoked(user_id, reason="mfa_reset"))
        await record(
            session,
            meta,
            "user.mfa_reset",
            actor_id=actor.user.id,
            target_id=user_id,
            changes={"removed_factors": removed, "revoked_sessions": revoked},
        )
    return removed


async def _lock_admins(session: AsyncSession, actor: Viewer) -> set[uuid.UUID]:
    """Lock the active admins; the actor must still be one of them (it may have been demoted
    since its request was authenticated)."""
    admins = set(await user_repo.lock_active_admin_ids(session))
    if actor.user.id not in admins:
        raise Forbidden("Administrator role required")
    return admins


def _removes_admin(before: dict[str, Any], after: dict[str, Any]) -> bool:
    def active_admin(state: dict[str, Any]) -> bool:
        return bool(
            state["role"] == Role.ADMIN.value and state["status"] == UserStatus.ACTIVE.value
        )

    return active_admin(before) and not active_admin(after)


def _require_another_admin(admins: set[uuid.UUID], user_id: uuid.UUID) -> None:
    if not admins - {user_id}:
        raise Conflict(LAST_ADMIN)
