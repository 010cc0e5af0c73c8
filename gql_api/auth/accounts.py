"""Account flows: register, login (``auth.login``, re-exported here), change password. Inputs
arrive already validated (``gql_api.validation``); each change and its audit entry commit in one
transaction.

Hashing happens outside transactions (it takes a worker thread ~0.3 s at cost 12) so that no
connection or row lock is held while bcrypt runs.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gql_api.config import AuthSettings
from gql_api.db import Database
from gql_api.errors import BadUserInput, Conflict, Unauthenticated
from gql_api.models import TokenPurpose, User
from gql_api.realtime import events as realtime
from gql_api.repositories import login_attempts
from gql_api.repositories import one_time_tokens as token_repo
from gql_api.repositories import sessions as session_repo
from gql_api.repositories import users as user_repo

from . import rate_limits
from . import sessions as session_policy
from .current import Viewer, viewer_password_hash
from .events import RequestMeta, record
from .login import INVALID_CREDENTIALS, login
from .passwords import hash_password, verify_password
from .sessions import IssuedTokens

__all__ = ["INVALID_CREDENTIALS", "change_password", "login", "register"]


async def register(
    db: Database,
    settings: AuthSettings,
    *,
    email: str,
    password: str,
    first_name: str,
    last_name: str,
    meta: RequestMeta,
) -> IssuedTokens:
    """Create the account and sign it in; :class:`Conflict` when the e-mail is taken."""
    await rate_limits.admit_registration(db, settings, ip_address=meta.ip_address)
    password_hash = await hash_password(password, settings.bcrypt_rounds)
    async with db.transaction() as session:
        created = await user_repo.create_user(
            session,
            email=email,
            password_hash=password_hash,
            first_name=first_name,
            last_name=last_name,
        )
        if created is None or created.id is None:
            raise Conflict(
                "An account with this email already exists",
                fields={"email": "is already registered"},
            )
        user = await user_repo.record_login(session, user_id=created.id) or created
        await realtime.publish(
            session, realtime.user_changed(realtime.USER_CREATED, created.id, ("email",))
        )
        # Signed in from here: their writes set their read fence (gql_api.db.replicas).
        db.act_as(user.id)
        issued = await session_policy.start(session, settings, user=user, meta=meta)
        await record(
            session,
            meta,
            "auth.register",
            actor_id=user.id,
            target_id=user.id,
            changes={"email": email, "session_id": str(issued.session.id)},
        )
    return issued


async def change_password(
    db: Database,
    settings: AuthSettings,
    *,
    viewer: Viewer,
    current_password: str,
    new_password: str,
    meta: RequestMeta,
) -> IssuedTokens:
    """Needs the current password; ends every session of the user, this one included, and
    starts a new one (same device) with the tokens returned.

    Ending this session too is what refuses its access tokens issued before the change (they
    name their session, ``auth.current``), although they have not expired. The conditional
    revocation of this session also lets only one of two concurrent changes through.

    Wrong current passwords count against the account's login limit, so a stolen access token
    cannot be used to guess the password at leisure.
    """
    user = viewer.user
    assert user.id is not None
    attempt_id = await _check_current_password(
        db, settings, viewer=viewer, current_password=current_password, meta=meta
    )
    password_hash = await hash_password(new_password, settings.bcrypt_rounds)
    async with db.transaction() as session:
        await login_attempts.mark_succeeded(session, attempt_id=attempt_id)
        updated, device_info, revoked = await _replace_password(
            session, viewer=viewer, user_id=user.id, password_hash=password_hash
        )
        # Signed in from here: their writes set their read fence (gql_api.db.replicas).
        db.act_as(updated.id)
        issued = await session_policy.start(
            session, settings, user=updated, meta=meta, device_info=device_info
        )
        await record(
            session,
            meta,
            "auth.password_changed",
            actor_id=user.id,
            target_id=user.id,
            changes={
                "revoked_sessions": revoked + 1,
                "replaced_session_id": str(viewer.session_id),
                "session_id": str(issued.session.id),
            },
        )
    return issued


async def _check_current_password(
    db: Database,
    settings: AuthSettings,
    *,
    viewer: Viewer,
    current_password: str,
    meta: RequestMeta,
) -> int:
    """The login attempt admitted for this check (settled as succeeded by the caller's change),
    or :class:`BadUserInput` with the attempt counted as failed."""
    stored_hash = await viewer_password_hash(db, viewer)
    attempt_id = await rate_limits.admit_login(
        db, settings, email=viewer.user.email, ip_address=meta.ip_address
    )
    if not await verify_password(current_password, stored_hash):
        async with db.transaction() as session:
            await login_attempts.mark_failed(session, attempt_id=attempt_id)
        raise BadUserInput(
            "The current password is incorrect", fields={"currentPassword": "is incorrect"}
        )
    return attempt_id


async def _replace_password(
    session: AsyncSession, *, viewer: Viewer, user_id: uuid.UUID, password_hash: str
) -> tuple[User, dict[str, Any] | None, int]:
    """Set the new hash and end every session of the user, in the caller's transaction: the
    user, the device of the caller's session (its replacement keeps it) and how many other
    sessions ended. Raises :class:`Unauthenticated` when the caller's session ended meanwhile."""
    row = await session_repo.get(session, session_id=viewer.session_id)
    device_info = row.device_info if row is not None else None
    if not await session_repo.revoke(
        session, session_id=viewer.session_id, reason="password_changed"
    ):
        raise Unauthenticated("Session revoked or expired")
    updated = await user_repo.set_password(session, user_id=user_id, password_hash=password_hash)
    assert updated is not None
    revoked = await session_repo.revoke_all_for_user(
        session, user_id=user_id, reason="password_changed"
    )
    # The caller's own session too: it continues in a new one (change_password).
    await realtime.publish(session, realtime.sessions_revoked(user_id, reason="password_changed"))
    await token_repo.invalidate_for_user(
        session, user_id=user_id, purpose=TokenPurpose.RESET_PASSWORD
    )
    return updated, device_info, revoked
