"""Login and registration attempts, and mail requests, counted in PostgreSQL so that every
replica sees them.

An attempt is inserted (and committed) *before* the password is checked, and counts only the
attempts that precede it (``id <= attempt_id``): of N concurrent guesses exactly the ones within
the limit get through, instead of all N reading the same count before any is recorded. A login
attempt stays unsettled while its password is being checked; unsettled attempts older than
``STALE_AFTER`` (their server died mid-check) count as failures.

Every function works inside the caller's transaction and never commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gql_api.models import LoginAttempt

LOGIN = "login"
REGISTER = "register"
# Mail: requests by the caller's address, and mails of each purpose by recipient (``email``).
MAIL_REQUEST = "mail_request"
RESET_MAIL = "reset_mail"
VERIFY_MAIL = "verify_mail"
# Wrong second-factor codes (TOTP or recovery), by the account's e-mail.
MFA = "mfa"


STALE_AFTER = timedelta(seconds=60)


@dataclass(frozen=True)
class WindowCount:
    count: int  # unsuccessful attempts so far, settled or not, this one included
    oldest: datetime | None  # the oldest counted attempt, to compute retryAfter
    pending: int = 0  # of those before this one, how many are still being checked


async def add(
    session: AsyncSession,
    *,
    kind: str,
    email: str | None,
    ip_address: str | None,
    settled: bool = True,
) -> int:
    statement = (
        insert(LoginAttempt)
        .values(kind=kind, email=email, ip_address=ip_address, settled=settled)
        .returning(col(LoginAttempt.id))
    )
    attempt_id = (await session.execute(statement)).scalar_one()
    assert attempt_id is not None  # an identity column
    return attempt_id


async def count_before(
    session: AsyncSession,
    *,
    attempt_id: int,
    kind: str,
    window: timedelta,
    email: str | None = None,
    ip_address: str | None = None,
) -> WindowCount:
    """Unsuccessful attempts of this kind in the window, up to and including ``attempt_id``,
    for the given e-mail or address."""
    key = (
        LoginAttempt.email == email if email is not None else LoginAttempt.ip_address == ip_address
    )
    pending = func.count().filter(
        col(LoginAttempt.settled).is_(False),
        col(LoginAttempt.id) < attempt_id,
        col(LoginAttempt.created_at) > func.now() - STALE_AFTER,
    )
    statement = select(func.count(), func.min(LoginAttempt.created_at), pending).where(
        key,  # type: ignore[arg-type]
        LoginAttempt.kind == kind,  # type: ignore[arg-type]
        LoginAttempt.succeeded.is_(False),  # type: ignore[attr-defined]
        LoginAttempt.created_at > func.now() - window,  # type: ignore[operator]
        col(LoginAttempt.id) <= attempt_id,
    )
    count, oldest, waiting = (await session.execute(statement)).one()
    return WindowCount(count=int(count), oldest=oldest, pending=int(waiting))


async def mark_succeeded(session: AsyncSession, *, attempt_id: int) -> None:
    await session.execute(
        update(LoginAttempt)
        .where(LoginAttempt.id == attempt_id)  # type: ignore[arg-type]
        .values(succeeded=True, settled=True)
    )


async def mark_failed(session: AsyncSession, *, attempt_id: int) -> None:
    await session.execute(
        update(LoginAttempt)
        .where(LoginAttempt.id == attempt_id)  # type: ignore[arg-type]
        .values(settled=True)
    )


async def discard(session: AsyncSession, *, attempt_id: int) -> None:
    """Forget an attempt that was refused by the limit, so that hammering a locked account does
    not push its lock-out further into the future."""
    await session.execute(delete(LoginAttempt).where(LoginAttempt.id == attempt_id))  # type: ignore[arg-type]


async def clear(
    session: AsyncSession, *, email: str | None = None, ip_address: str | None = None
) -> int:
    """Delete the attempts of an e-mail or of an address (an admin lifting a limit)."""
    conditions = []
    if email is not None:
        conditions.append(LoginAttempt.email == email)
    if ip_address is not None:
        conditions.append(LoginAttempt.ip_address == ip_address)
    if not conditions:
        return 0
    result = await session.execute(delete(LoginAttempt).where(or_(*conditions)))  # type: ignore[arg-type]
    return int(result.rowcount)  # type: ignore[attr-defined]


_DELETE_OLDER = text(
    "DELETE FROM login_attempts WHERE id IN (SELECT id FROM login_attempts "
    "WHERE created_at < now() - make_interval(secs => :keep) LIMIT :batch)"
)


async def delete_older_than(session: AsyncSession, *, keep_s: float, batch: int) -> int:
    """At most ``batch`` attempts older than every rate-limit window (gql_api.ops.maintenance)."""
    result = await session.execute(_DELETE_OLDER, {"keep": keep_s, "batch": batch})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
