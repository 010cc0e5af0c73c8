"""Login: check the password, then start a session or, for an account with a second factor,
open a challenge (``auth.mfa``). Re-exported by ``auth.accounts``, with the other account flows.

Hashing happens outside transactions (it takes a worker thread ~0.3 s at cost 12) so that no
connection or row lock is held while bcrypt runs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gql_api.config import AuthSettings, utc_now
from gql_api.db import Database
from gql_api.errors import RateLimited, Unauthenticated
from gql_api.models import User, UserStatus
from gql_api.observability import metrics
from gql_api.repositories import login_attempts
from gql_api.repositories import mfa as mfa_repo
from gql_api.repositories import users as user_repo

from . import mfa, rate_limits
from . import sessions as session_policy
from .events import RequestMeta, record
from .passwords import hash_password, needs_rehash, verify_dummy, verify_password
from .sessions import IssuedTokens

INVALID_CREDENTIALS = "Invalid email or password"


async def login(
    db: Database,
    settings: AuthSettings,
    *,
    email: str,
    password: str,
    device_info: dict[str, Any] | None,
    meta: RequestMeta,
    clock: Callable[[], datetime] = utc_now,
) -> IssuedTokens | mfa.Challenge:
    """Check the password and start a session; for an account with a second factor, open a
    challenge instead (``auth.mfa``): the session starts when ``verifyMfa`` completes it.

    Unknown e-mail, wrong password and inactive account give one error after one bcrypt check
    each (a dummy hash for unknown e-mails), so neither the answer nor its timing tells them
    apart.
    """
    try:
        attempt_id = await rate_limits.admit_login(
            db, settings, email=email, ip_address=meta.ip_address
        )
    except RateLimited:
        metrics.record_failed_login()
        raise
    found, reason = await _check_credentials(db, settings, email=email, password=password)
    if reason or found is None or found.id is None:
        await _record_failed_login(
            db, meta, attempt_id=attempt_id, email=email, found=found, reason=reason
        )
        metrics.record_failed_login()
        raise Unauthenticated(INVALID_CREDENTIALS)

    upgraded = None
    if needs_rehash(found.password_hash, settings.bcrypt_rounds):
        upgraded = await hash_password(password, settings.bcrypt_rounds)
    async with db.transaction() as session:
        await login_attempts.mark_succeeded(session, attempt_id=attempt_id)
        if upgraded is not None:
            await user_repo.upgrade_password_hash(
                session, user_id=found.id, old_hash=found.password_hash, new_hash=upgraded
            )
        result = await _finish_login(
            session,
            db,
            settings,
            user=found,
            device_info=device_info,
            meta=meta,
            clock=clock,
            rehashed=upgraded is not None,
        )
    return result


async def _check_credentials(
    db: Database, settings: AuthSettings, *, email: str, password: str
) -> tuple[User | None, str]:
    """The account of ``email`` and why it may not sign in ("" when it may). Exactly one bcrypt
    check whatever the answer (a dummy one for an unknown e-mail), so timing tells nothing."""
    async with db.session() as session:
        found = await user_repo.get_by_email(session, email=email)
    if found is None:
        await verify_dummy(password, settings.bcrypt_rounds)
        return found, "unknown_email"
    if not await verify_password(password, found.password_hash):
        return found, "wrong_password"
    if found.status != UserStatus.ACTIVE.value:
        return found, "inactive"
    return found, ""


async def _record_failed_login(
    db: Database,
    meta: RequestMeta,
    *,
    attempt_id: int,
    email: str,
    found: User | None,
    reason: str,
) -> None:
    """The attempt counts against the limits, and the audit log says why (the caller is told
    nothing more than INVALID_CREDENTIALS)."""
    async with db.transaction() as session:
        await login_attempts.mark_failed(session, attempt_id=attempt_id)
        await record(
            session,
            meta,
            "auth.login_failed",
            target_id=found.id if found is not None else None,
            changes={"email": email, "reason": reason},
        )


async def _finish_login(
    session: AsyncSession,
    db: Database,
    settings: AuthSettings,
    *,
    user: User,
    device_info: dict[str, Any] | None,
    meta: RequestMeta,
    clock: Callable[[], datetime],
    rehashed: bool,
) -> IssuedTokens | mfa.Challenge:
    """In the login's transaction, the password being right: a challenge for an account with a
    second factor (no session until it is answered), else the session."""
    assert user.id is not None
    if await mfa_repo.has_confirmed_factor(session, user_id=user.id):
        challenge = await mfa.open_challenge(
            session, settings, user=user, device_info=device_info, meta=meta, now=clock()
        )
        await record(
            session,
            meta,
            "auth.login_mfa_required",
            actor_id=user.id,
            target_id=user.id,
            changes={"rehashed": rehashed},
        )
        return challenge
    signed_in = await user_repo.record_login(session, user_id=user.id) or user
    # Signed in from here: their writes set their read fence (gql_api.db.replicas).
    db.act_as(signed_in.id)
    issued = await session_policy.start(
        session, settings, user=signed_in, meta=meta, device_info=device_info
    )
    await record(
        session,
        meta,
        "auth.login",
        actor_id=signed_in.id,
        target_id=signed_in.id,
        changes={"session_id": str(issued.session.id), "rehashed": rehashed},
    )
    return issued
