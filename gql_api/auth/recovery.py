"""E-mail verification and password reset: single-use tokens sent by mail.

Tokens are 256 random bits, stored only as SHA-256, valid for ``verification_token_ttl`` (24 h)
and ``reset_token_ttl`` (1 h), used up by one conditional UPDATE. Issuing a new token uses up
the older ones of the same purpose.

A password-reset request must not reveal whether the account exists, in its answer or in its
timing, so :func:`send_password_reset` is meant to run after the response has been sent (a
background task): the caller always answers ``true`` at once.

Mail is limited (``auth.mail_*``, counted in PostgreSQL, ``auth.rate_limits``): requests per client
address (``RATE_LIMITED``: it is about the caller) and mails per recipient. Over the recipient's
limit a reset request still answers ``true`` and sends nothing, counted before the account is
looked up, so that it behaves alike for addresses with and without an account; a verification
request, made by the signed-in owner of the address, is told ``RATE_LIMITED``.
"""

from __future__ import annotations

import logging
import smtplib
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from sqlalchemy.ext.asyncio import AsyncSession

from gql_api.config import Settings
from gql_api.db import Database
from gql_api.errors import BadUserInput, RateLimited, ServiceUnavailable
from gql_api.mailer import Mailer
from gql_api.models import TokenPurpose, User, UserStatus
from gql_api.realtime import events as realtime
from gql_api.repositories import login_attempts
from gql_api.repositories import one_time_tokens as token_repo
from gql_api.repositories import sessions as session_repo
from gql_api.repositories import users as user_repo

from . import rate_limits
from .current import Viewer
from .events import RequestMeta, record
from .passwords import hash_password
from .tokens import hash_token, new_opaque_token

log = logging.getLogger(__name__)


def _invalid_token() -> BadUserInput:
    return BadUserInput(
        "The link is invalid, expired or already used", fields={"token": "is invalid or expired"}
    )


def _link(settings: Settings, path: str, token: str) -> str:
    return f"{settings.mail.public_url.rstrip('/')}/{path}?token={quote(token)}"


async def _issue_token(
    session: AsyncSession, *, user_id: uuid.UUID, purpose: TokenPurpose, ttl: timedelta
) -> str:
    """A new single-use token of this purpose (earlier ones stop working); stored hashed."""
    token = new_opaque_token()
    await token_repo.invalidate_for_user(session, user_id=user_id, purpose=purpose)
    await token_repo.create(
        session,
        user_id=user_id,
        purpose=purpose,
        token_hash=hash_token(token),
        expires_at=datetime.now(UTC) + ttl,
    )
    return token


async def request_email_verification(
    db: Database, settings: Settings, mailer: Mailer, *, viewer: Viewer, meta: RequestMeta
) -> bool:
    """Mail a verification link to the viewer; nothing to do when already verified."""
    user = viewer.user
    assert user.id is not None
    if user.email_verified:
        return True
    await rate_limits.admit_mail_request(db, settings.auth, ip_address=meta.ip_address)
    await rate_limits.admit_mail(
        db, settings.auth, purpose="verify", recipient=user.email, ip_address=meta.ip_address
    )
    ttl = settings.auth.verification_token_ttl
    async with db.transaction() as session:
        token = await _issue_token(
            session, user_id=user.id, purpose=TokenPurpose.VERIFY_EMAIL, ttl=ttl
        )
        await record(
            session, meta, "auth.email_verification_requested", actor_id=user.id, target_id=user.id
        )
    body = (
        f"Hello {user.first_name},\n\n"
        f"Confirm your e-mail address by opening this link within {_hours(ttl)}:\n\n"
        f"{_link(settings, 'verify-email', token)}\n\n"
        "If you did not ask for this, ignore this message.\n"
    )
    try:
        await mailer.send(to=user.email, subject="Confirm your e-mail address", body=body)
    except (OSError, smtplib.SMTPException) as exc:
        raise ServiceUnavailable("The mail server is unavailable; try again shortly") from exc
    return True


async def verify_email(db: Database, *, token: str, meta: RequestMeta) -> User:
    async with db.transaction() as session:
        user_id = await token_repo.consume(
            session, purpose=TokenPurpose.VERIFY_EMAIL, token_hash=hash_token(token)
        )
        if user_id is None:
            raise _invalid_token()
        user = await user_repo.mark_email_verified(session, user_id=user_id)
        if user is None:
            raise _invalid_token()
        await record(session, meta, "auth.email_verified", actor_id=user_id, target_id=user_id)
    return user


async def send_password_reset(
    db: Database, settings: Settings, mailer: Mailer, *, email: str, meta: RequestMeta
) -> None:
    """Mail a reset link if an active account has this e-mail. Never raises: it runs after the
    response, where nobody could handle an error, so failures are logged."""
    try:
        await _send_password_reset(db, settings, mailer, email=email, meta=meta)
    except Exception:
        log.exception("password reset for a request %s failed", meta.request_id)


async def _send_password_reset(
    db: Database, settings: Settings, mailer: Mailer, *, email: str, meta: RequestMeta
) -> None:
    token = ""
    ttl = settings.auth.reset_token_ttl
    try:
        await rate_limits.admit_mail(
            db, settings.auth, purpose="reset", recipient=email, ip_address=meta.ip_address
        )
        limited = False
    except RateLimited:
        limited = True
    async with db.transaction() as session:
        user = await user_repo.get_by_email(session, email=email)
        usable = (
            not limited
            and user is not None
            and user.id is not None
            and user.status == UserStatus.ACTIVE
        )
        if user is not None and user.id is not None and usable:
            token = await _issue_token(
                session, user_id=user.id, purpose=TokenPurpose.RESET_PASSWORD, ttl=ttl
            )
        await record(
            session,
            meta,
            "auth.password_reset_requested",
            target_id=user.id if user is not None else None,
            changes={"email": email, "sent": usable, "rate_limited": limited},
        )
    if not usable or user is None:
        return
    body = (
        f"Hello {user.first_name},\n\n"
        f"Choose a new password by opening this link within {_hours(ttl)}:\n\n"
        f"{_link(settings, 'reset-password', token)}\n\n"
        "If you did not ask for this, ignore this message: your password stays as it is.\n"
    )
    await mailer.send(to=user.email, subject="Reset your password", body=body)


async def reset_password(
    db: Database, settings: Settings, *, token: str, new_password: str, meta: RequestMeta
) -> None:
    """Set the new password and revoke every session of the user."""
    token_hash = hash_token(token)
    # Look before hashing, so that bogus tokens cost no bcrypt time; use up in the transaction.
    async with db.session() as session:
        found = await token_repo.peek(
            session, purpose=TokenPurpose.RESET_PASSWORD, token_hash=token_hash
        )
        if found is None:
            raise _invalid_token()
    password_hash = await hash_password(new_password, settings.auth.bcrypt_rounds)
    async with db.transaction() as session:
        user_id = await token_repo.consume(
            session, purpose=TokenPurpose.RESET_PASSWORD, token_hash=token_hash
        )
        if user_id is None:
            raise _invalid_token()
        user = await user_repo.set_password(session, user_id=user_id, password_hash=password_hash)
        if user is None:
            raise _invalid_token()
        revoked = await session_repo.revoke_all_for_user(
            session, user_id=user_id, reason="password_reset"
        )
        if revoked:
            await realtime.publish(
                session, realtime.sessions_revoked(user_id, reason="password_reset")
            )
        await token_repo.invalidate_for_user(
            session, user_id=user_id, purpose=TokenPurpose.RESET_PASSWORD
        )
        # The mailbox owner proved who they are: lift the account's failed-login limit.
        await login_attempts.clear(session, email=user.email)
        await record(
            session,
            meta,
            "auth.password_reset",
            target_id=user_id,
            changes={"revoked_sessions": revoked},
        )


def _hours(ttl: timedelta) -> str:
    seconds = int(ttl.total_seconds())
    return f"{seconds // 3600} hours" if seconds >= 7200 else f"{max(seconds // 60, 1)} minutes"
