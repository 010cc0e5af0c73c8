"""Brute-force limits: failed logins per account and per address, wrong second-factor codes
per account, registrations per address, and password-reset and verification mails per
recipient and per requesting address.

Counted in PostgreSQL (``login_attempts``) so that every replica sees the same numbers. The
attempt is recorded and committed before the password is checked and counts only the attempts
before it (see ``repositories.login_attempts``), so concurrent guesses are counted exactly and
each aliased ``login`` in one document counts. Limits slide with time: an attempt older than the
window no longer counts, so there is no permanent lock-out; an admin can clear them earlier
(``clearLoginAttempts``). An attempt refused by the limit is not kept, so hammering a locked
account does not push its release further away.

Attempts whose password check is still running (unsettled) count too, so concurrent guesses
cannot overshoot the limit; but an attempt over the limit only because of unsettled ones ahead
of it waits (briefly, polling) for them to settle: of 50 concurrent correct logins, all succeed.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import Literal

from gql_api.config import AuthSettings
from gql_api.db import Database
from gql_api.errors import RateLimited
from gql_api.repositories import login_attempts
from gql_api.repositories.login_attempts import (
    LOGIN,
    MAIL_REQUEST,
    MFA,
    REGISTER,
    RESET_MAIL,
    VERIFY_MAIL,
    WindowCount,
)


def _retry_after(counted: WindowCount, window: timedelta) -> int:
    """Seconds until the oldest counted attempt leaves the window."""
    if counted.oldest is None:
        return 1
    remaining = counted.oldest + window - datetime.now(UTC)
    return max(1, math.ceil(remaining.total_seconds()))


# How long an attempt may wait for unsettled attempts ahead of it, and how often it looks.
PENDING_WAIT_S = 15.0
PENDING_POLL_S = 0.05


async def _admit(
    db: Database,
    *,
    kind: str,
    email: str | None,
    ip_address: str | None,
    window: timedelta,
    limits: list[tuple[str, str, int]],  # (key column, value, limit)
) -> int:
    async with db.session() as session:
        attempt_id = await login_attempts.add(
            session, kind=kind, email=email, ip_address=ip_address, settled=kind != LOGIN
        )
        await session.commit()  # visible to concurrent attempts before we count
    deadline = asyncio.get_running_loop().time() + PENDING_WAIT_S
    while True:
        over: list[WindowCount] = []
        waiting = False
        async with db.session() as session:
            for column, value, limit in limits:
                counted = await login_attempts.count_before(
                    session, attempt_id=attempt_id, kind=kind, window=window, **{column: value}
                )
                if counted.count > limit:
                    over.append(counted)
                    # Over only because checks ahead of us are still running: they may succeed.
                    waiting = waiting or counted.count - counted.pending <= limit
            decided = not over or not waiting or asyncio.get_running_loop().time() >= deadline
            if over and decided:
                await login_attempts.discard(session, attempt_id=attempt_id)
                await session.commit()
        if decided:
            break
        await asyncio.sleep(PENDING_POLL_S)
    if over:
        retry_after = max(_retry_after(counted, window) for counted in over)
        raise RateLimited(
            f"Too many attempts; try again in {retry_after} seconds", retry_after=retry_after
        )
    return attempt_id


async def admit_login(
    db: Database, settings: AuthSettings, *, email: str, ip_address: str | None
) -> int:
    """Record a login attempt (failed until settled) and return its id, or raise
    :class:`RateLimited` when the account or the address is past its limit."""
    limits = [("email", email, settings.login_max_failures_per_account)]
    if ip_address is not None:
        limits.append(("ip_address", ip_address, settings.login_max_failures_per_address))
    return await _admit(
        db,
        kind=LOGIN,
        email=email,
        ip_address=ip_address,
        window=settings.login_failure_window,
        limits=limits,
    )


async def admit_mfa(db: Database, settings: AuthSettings, *, email: str) -> int:
    """Record a second-factor code attempt of the account (a failure until marked succeeded)
    and return its id, or raise :class:`RateLimited` past ``mfa_max_failures_per_account``
    wrong codes in ``login_failure_window``, whichever challenge they were made on."""
    return await _admit(
        db,
        kind=MFA,
        email=email,
        ip_address=None,
        window=settings.login_failure_window,
        limits=[("email", email, settings.mfa_max_failures_per_account)],
    )


async def admit_registration(
    db: Database, settings: AuthSettings, *, ip_address: str | None
) -> None:
    """Count a registration attempt from this address, or raise :class:`RateLimited`."""
    if ip_address is None:
        return
    await _admit(
        db,
        kind=REGISTER,
        email=None,
        ip_address=ip_address,
        window=settings.register_window,
        limits=[("ip_address", ip_address, settings.register_max_per_address)],
    )


async def admit_mail_request(
    db: Database, settings: AuthSettings, *, ip_address: str | None
) -> None:
    """Count a request for a reset or verification mail from this address, or raise
    :class:`RateLimited`. The limit is about the caller, so refusing tells nothing of accounts."""
    if ip_address is None:
        return
    await _admit(
        db,
        kind=MAIL_REQUEST,
        email=None,
        ip_address=ip_address,
        window=settings.mail_window,
        limits=[("ip_address", ip_address, settings.mail_max_per_address)],
    )


async def admit_mail(
    db: Database,
    settings: AuthSettings,
    *,
    purpose: Literal["reset", "verify"],
    recipient: str,
    ip_address: str | None,
) -> None:
    """Count one mail of this purpose to ``recipient``, or raise :class:`RateLimited` when it
    had ``mail_max_per_recipient`` in the window. Call it before looking the account up, so
    that addresses with and without an account are counted alike."""
    await _admit(
        db,
        kind=RESET_MAIL if purpose == "reset" else VERIFY_MAIL,
        email=recipient,
        ip_address=ip_address,
        window=settings.mail_window,
        limits=[("email", recipient, settings.mail_max_per_recipient)],
    )
