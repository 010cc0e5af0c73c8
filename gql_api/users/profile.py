"""updateMe: the viewer edits its own names and profile."""

from __future__ import annotations

from typing import Any

from gql_api import validation
from gql_api.auth.current import Viewer
from gql_api.auth.events import RequestMeta, record
from gql_api.db import Database
from gql_api.errors import NotFound
from gql_api.models import User, UserProfile
from gql_api.realtime import events as realtime
from gql_api.repositories import profiles as profile_repo
from gql_api.repositories import users as user_repo

from .changes import diff, snapshot

NAME_FIELDS = ("first_name", "last_name")
# What one old or new value may take in an audit entry; every valid input fits.
AUDIT_VALUE_LIMITS = validation.JsonLimits(depth=validation.JSON_MAX_DEPTH, bytes=16384, keys=256)


def bounded(changes: dict[str, Any]) -> dict[str, Any]:
    """The changes with any value beyond :data:`AUDIT_VALUE_LIMITS` replaced by a note: a value
    stored before inputs were bounded (nested hundreds of levels deep, say) would otherwise be
    copied into the audit log and make that entry unreadable too."""
    for change in changes.values():
        for side in ("old", "new"):
            try:
                validation.check_json(change[side], AUDIT_VALUE_LIMITS)
            except validation.InvalidValue as exc:
                change[side] = f"(not recorded: the value {exc})"
    return changes


async def update_me(
    db: Database,
    *,
    viewer: Viewer,
    names: dict[str, str],
    profile: dict[str, Any],
    meta: RequestMeta,
) -> tuple[User, UserProfile | None]:
    """Apply the given fields only (a partial update); returns the user and, when the profile
    was written, its new row. The audit entry lists each changed field's old and new value."""
    user_id = viewer.user.id
    assert user_id is not None
    async with db.transaction() as session:
        # Locked, so that two concurrent edits each diff against what the other committed.
        user = await user_repo.get_for_update(session, user_id=user_id)
        if user is None:  # deleted since the request was authenticated
            raise NotFound("User not found")
        changes = diff(snapshot(user, NAME_FIELDS), names)
        if changes:
            user = await user_repo.update_fields(session, user_id=user_id, values=names) or user
        written: UserProfile | None = None
        if profile:
            old = await profile_repo.get_for_update(session, user_id=user_id)
            changes |= diff(snapshot(old, profile_repo.EDITABLE), profile, prefix="profile.")
            written = await profile_repo.upsert(session, user_id=user_id, values=profile)
        if changes:
            await realtime.publish(
                session, realtime.user_changed(realtime.USER_UPDATED, user_id, changes)
            )
        await record(
            session,
            meta,
            "user.profile_updated",
            actor_id=user_id,
            target_id=user_id,
            changes=bounded(changes),
        )
    return user, written
