"""The login challenge: opened by ``accounts.login`` when the user has a confirmed factor, and
completed by :func:`verify` with a TOTP code or a recovery code; the session starts only then."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gql_api.config import AuthSettings, Settings
from gql_api.db import Database
from gql_api.errors import Unauthenticated
from gql_api.models import MfaChallenge, User, UserStatus
from gql_api.repositories import login_attempts
from gql_api.repositories import mfa as mfa_repo
from gql_api.repositories import users as user_repo

from .. import rate_limits
from .. import sessions as session_policy
from ..events import RequestMeta, record
from ..mfa_crypto import keyed_hash
from ..sessions import IssuedTokens
from ..tokens import new_opaque_token
from .codes import recovery_hash, totp_step
from .factors import INVALID_CODE

_CHALLENGE = b"challenge token"
INVALID_CHALLENGE = "Invalid or expired sign-in challenge; sign in again"
TOO_MANY = "Too many wrong codes: this sign-in has ended; sign in again"


@dataclass(frozen=True)
class Challenge:
    token: str
    expires_at: datetime
    methods: list[str]


async def open_challenge(
    session: AsyncSession,
    settings: AuthSettings,
    *,
    user: User,
    device_info: dict[str, Any] | None,
    meta: RequestMeta,
    now: datetime,
) -> Challenge:
    """The second step of a login, in the caller's transaction."""
    assert user.id is not None
    token = new_opaque_token()
    expires_at = now + settings.mfa_challenge_ttl
    await mfa_repo.create_challenge(
        session,
        user_id=user.id,
        token_hash=keyed_hash(settings, _CHALLENGE, token),
        expires_at=expires_at,
        device_info=device_info,
        ip_address=meta.ip_address,
        user_agent=meta.user_agent,
    )
    methods = ["totp"]
    if await mfa_repo.count_unused_recovery_codes(session, user_id=user.id):
        methods.append("recovery_code")
    return Challenge(token=token, expires_at=expires_at, methods=methods)


async def verify(
    db: Database,
    settings: Settings,
    *,
    challenge_token: str,
    code: str | None,
    recovery_code: str | None,
    meta: RequestMeta,
) -> IssuedTokens:
    """Complete a login: the session starts now, with the first step's device and address."""
    token_hash = keyed_hash(settings.auth, _CHALLENGE, challenge_token)
    async with db.session() as session:
        found = await mfa_repo.find_challenge(session, token_hash=token_hash)
        user = await user_repo.get_by_id(session, user_id=found.user_id) if found else None
    if found is None or user is None or not _open(settings, found, user):
        raise Unauthenticated(INVALID_CHALLENGE, reason="MFA_CHALLENGE_INVALID")
    # Counted before the code is checked, like a login: concurrent guesses are counted exactly.
    attempt_id = await rate_limits.admit_mfa(db, settings.auth, email=user.email)
    failure: str
    async with db.transaction() as session:
        challenge = await mfa_repo.find_challenge(session, token_hash=token_hash, lock=True)
        if challenge is None or challenge.id is None or not _open(settings, challenge, user):
            # Used up by a concurrent call meanwhile: not a guess, so it does not count.
            await login_attempts.discard(session, attempt_id=attempt_id)
            failure = INVALID_CHALLENGE
        else:
            method, used = await _check_second_factor(
                session, settings, user=user, code=code, recovery_code=recovery_code
            )
            if used:
                return await _sign_in(
                    session,
                    db,
                    settings,
                    challenge=challenge,
                    user=user,
                    method=method,
                    attempt_id=attempt_id,
                    meta=meta,
                )
            failure = await _count_wrong_code(
                session, settings, challenge_id=challenge.id, user=user, method=method, meta=meta
            )
    if failure == INVALID_CODE:
        raise Unauthenticated(INVALID_CODE, reason="MFA_CODE_INVALID")
    raise Unauthenticated(failure, reason="MFA_CHALLENGE_INVALID")


async def _sign_in(
    session: AsyncSession,
    db: Database,
    settings: Settings,
    *,
    challenge: MfaChallenge,
    user: User,
    method: str,
    attempt_id: int,
    meta: RequestMeta,
) -> IssuedTokens:
    """The second factor was right: use the challenge up and start the session, with the device
    and address of the login's first step, in the caller's transaction."""
    assert challenge.id is not None and user.id is not None
    await mfa_repo.consume_challenge(session, challenge_id=challenge.id)
    await login_attempts.mark_succeeded(session, attempt_id=attempt_id)
    signed_in = await user_repo.record_login(session, user_id=user.id) or user
    first_step = RequestMeta(
        ip_address=str(challenge.ip_address) if challenge.ip_address else None,
        user_agent=challenge.user_agent,
        request_id=meta.request_id,
    )
    # Signed in from here: their writes set their read fence (gql_api.db.replicas).
    db.act_as(signed_in.id)
    issued = await session_policy.start(
        session, settings.auth, user=signed_in, meta=first_step, device_info=challenge.device_info
    )
    left = await mfa_repo.count_unused_recovery_codes(session, user_id=user.id)
    await record(
        session,
        meta,
        "auth.login",
        actor_id=user.id,
        target_id=user.id,
        changes={
            "session_id": str(issued.session.id),
            "mfa": method,
            **({"recovery_codes_left": left} if method == "recovery_code" else {}),
        },
    )
    return issued


async def _count_wrong_code(
    session: AsyncSession,
    settings: Settings,
    *,
    challenge_id: uuid.UUID,
    user: User,
    method: str,
    meta: RequestMeta,
) -> str:
    """Count a wrong code against the challenge, ending it at the last allowed attempt; the
    message to refuse with."""
    attempts = await mfa_repo.count_attempt(session, challenge_id=challenge_id)
    ended = attempts >= settings.auth.mfa_max_attempts_per_challenge
    if ended:
        await mfa_repo.consume_challenge(session, challenge_id=challenge_id)
    await record(
        session,
        meta,
        "auth.mfa_failed",
        target_id=user.id,
        changes={"method": method, "attempts": attempts, "challenge_ended": ended},
    )
    return TOO_MANY if ended else INVALID_CODE


def _open(settings: Settings, challenge: MfaChallenge, user: User) -> bool:
    """Unused, unexpired, attempts left, and its user still active."""
    return (
        challenge.consumed_at is None
        and challenge.expires_at > settings.clock()
        and challenge.attempts < settings.auth.mfa_max_attempts_per_challenge
        and user.status == UserStatus.ACTIVE.value
    )


async def _check_second_factor(
    session: AsyncSession,
    settings: Settings,
    *,
    user: User,
    code: str | None,
    recovery_code: str | None,
) -> tuple[str, bool]:
    """(method, accepted); marks the factor's step or the recovery code used when accepted."""
    assert user.id is not None
    if recovery_code is not None:
        presented = recovery_hash(settings, recovery_code)
        match = None
        # Every unused code is compared (constant time each), whichever matches.
        for row in await mfa_repo.unused_recovery_codes(session, user_id=user.id):
            if secrets.compare_digest(row.code_hash, presented) and match is None:
                match = row
        if match is None or match.id is None:
            return "recovery_code", False
        return "recovery_code", await mfa_repo.spend_recovery_code(session, code_id=match.id)
    assert code is not None
    factor = await mfa_repo.lock_totp(session, user_id=user.id)
    if factor is None or factor.id is None or factor.confirmed_at is None:
        return "totp", False
    step = totp_step(settings, factor, code)
    if step is None:
        return "totp", False
    await mfa_repo.mark_used(session, factor_id=factor.id, step=step)
    return "totp", True
