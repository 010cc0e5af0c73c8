"""Second factor flows: TOTP enrolment, the login challenge and its verification, recovery
codes, removal. Inputs arrive validated; each change commits with its audit entry.

Login with a factor
-------------------
``accounts.login`` checks the password and, when the user has a confirmed factor, creates no
session but a challenge (:func:`open_challenge`): a random token stored as a keyed hash, valid
``auth.mfa_challenge_ttl``, remembering the first step's device, address and user agent.
:func:`verify` takes the token with a TOTP code or a recovery code; the session is created only
then, with what the challenge remembered. A challenge is single use, and
``auth.mfa_max_attempts_per_challenge`` wrong codes end it; wrong codes also count per account
(``login_attempts`` kind ``mfa``), so that opening new challenges does not buy more guesses.

Enrolling and regenerating recovery codes need a recent password check: the session must have
been created (by a login, which checked the password) within ``auth.mfa_reauth_window``, or the
call must carry the password.

A code is checked against every step of the window and a recovery code against every unused
code of the user, whatever matches, so a wrong answer costs what a right one does.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gql_api.config import AuthSettings, Settings
from gql_api.db import Database
from gql_api.errors import BadUserInput, Conflict, Forbidden, NotFound, Unauthenticated
from gql_api.models import MfaChallenge, MfaFactorKind, User, UserMfaFactor, UserStatus
from gql_api.repositories import login_attempts
from gql_api.repositories import mfa as mfa_repo
from gql_api.repositories import sessions as session_repo
from gql_api.repositories import users as user_repo

from . import rate_limits, totp
from . import sessions as session_policy
from .current import Viewer
from .events import RequestMeta, record
from .mfa_crypto import SecretUnreadable, decrypt_secret, encrypt_secret, keyed_hash
from .passwords import verify_password
from .sessions import IssuedTokens
from .tokens import new_opaque_token

log = logging.getLogger(__name__)

RECOVERY_CODE_COUNT = 10
_CHALLENGE = b"challenge token"
_RECOVERY = b"recovery code"
INVALID_CHALLENGE = "Invalid or expired sign-in challenge; sign in again"
INVALID_CODE = "Invalid code"
TOO_MANY = "Too many wrong codes: this sign-in has ended; sign in again"


@dataclass(frozen=True)
class Enrollment:
    factor_id: uuid.UUID
    secret: str
    uri: str
    qr_svg: str


@dataclass(frozen=True)
class Challenge:
    token: str
    expires_at: datetime
    methods: list[str]


@dataclass(frozen=True)
class MfaState:
    factors: list[UserMfaFactor]
    recovery_codes_left: int

    @property
    def enabled(self) -> bool:
        return bool(self.factors)


_RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"


def new_recovery_code() -> str:
    """50 random bits as 10 base32 characters, shown as ``xxxxx-xxxxx``."""
    text = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
    return f"{text[:5]}-{text[5:]}"


def _normalise_recovery_code(code: str) -> str:
    return code.strip().lower().replace("-", "").replace(" ", "")


def _recovery_hash(settings: Settings, code: str) -> str:
    return keyed_hash(settings.auth, _RECOVERY, _normalise_recovery_code(code))


# --- re-authentication ------------------------------------------------------------------------


async def require_fresh_auth(
    db: Database, settings: Settings, *, viewer: Viewer, password: str | None, meta: RequestMeta
) -> None:
    """Sensitive changes need the password in the call, or a session that signed in within
    ``auth.mfa_reauth_window``. A wrong password counts against the account's login limit."""
    user = viewer.user
    if password is not None:
        attempt_id = await rate_limits.admit_login(
            db, settings.auth, email=user.email, ip_address=meta.ip_address
        )
        # The viewer carries no password hash (auth.current): read it for this one check.
        stored_hash = await user_repo.password_hash_of(db, user_id=user.id)
        ok = stored_hash is not None and await verify_password(password, stored_hash)
        async with db.transaction() as session:
            if ok:
                await login_attempts.mark_succeeded(session, attempt_id=attempt_id)
            else:
                await login_attempts.mark_failed(session, attempt_id=attempt_id)
        if not ok:
            raise BadUserInput("The password is incorrect", fields={"password": "is incorrect"})
        return
    async with db.session() as session:
        row = await session_repo.get(session, session_id=viewer.session_id)
    signed_in = row.created_at if row is not None else None
    if signed_in is None or settings.clock() - signed_in > settings.auth.mfa_reauth_window:
        raise Forbidden(
            "Sign in again or give the password: this change needs a recent password check",
            reason="REAUTHENTICATION_REQUIRED",
        )


# --- enrolment --------------------------------------------------------------------------------


async def start_totp_enrollment(
    db: Database, settings: Settings, *, viewer: Viewer, password: str | None, meta: RequestMeta
) -> Enrollment:
    """A pending TOTP factor (replacing a pending one) and what the authenticator app needs."""
    await require_fresh_auth(db, settings, viewer=viewer, password=password, meta=meta)
    user = viewer.user
    secret = totp.new_secret()
    async with db.transaction() as session:
        factor = await mfa_repo.replace_pending_totp(
            session,
            user_id=user.id,
            secret_ciphertext=encrypt_secret(settings.auth, user_id=user.id, secret=secret),
        )
        if factor is None or factor.id is None:
            raise Conflict(
                "A TOTP factor is already enrolled; remove it before enrolling another",
                reason="MFA_ALREADY_ENROLLED",
            )
        await record(
            session,
            meta,
            "auth.mfa_enrollment_started",
            actor_id=user.id,
            target_id=user.id,
            changes={"factor_id": str(factor.id), "kind": MfaFactorKind.TOTP.value},
        )
    uri = totp.provisioning_uri(secret, account=user.email, issuer=settings.auth.mfa_issuer)
    return Enrollment(factor_id=factor.id, secret=secret, uri=uri, qr_svg=totp.qr_svg(uri))


async def confirm_totp_enrollment(
    db: Database,
    settings: Settings,
    *,
    viewer: Viewer,
    code: str,
    password: str | None,
    meta: RequestMeta,
) -> list[str]:
    """Activate the pending factor with a first code; returns the recovery codes (shown once).
    Wrong codes count against the account's MFA limit."""
    await require_fresh_auth(db, settings, viewer=viewer, password=password, meta=meta)
    user = viewer.user
    attempt_id = await rate_limits.admit_mfa(db, settings.auth, email=user.email)
    codes = [new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    async with db.transaction() as session:
        factor = await mfa_repo.lock_totp(session, user_id=user.id)
        if factor is None or factor.id is None or factor.confirmed_at is not None:
            raise BadUserInput(
                "No TOTP enrolment is pending: start one first",
                fields={"code": "no enrolment pending"},
            )
        step = _totp_step(settings, factor, code)
        if step is not None:
            await login_attempts.mark_succeeded(session, attempt_id=attempt_id)
            await mfa_repo.mark_used(session, factor_id=factor.id, step=step, confirm=True)
            await mfa_repo.delete_recovery_codes(session, user_id=user.id)
            await mfa_repo.add_recovery_codes(
                session, user_id=user.id, code_hashes=[_recovery_hash(settings, c) for c in codes]
            )
            await record(
                session,
                meta,
                "auth.mfa_enrolled",
                actor_id=user.id,
                target_id=user.id,
                changes={"factor_id": str(factor.id), "kind": factor.kind},
            )
    if step is None:  # the attempt stays counted as a failure (committed by admit_mfa)
        raise BadUserInput(INVALID_CODE, fields={"code": "is incorrect"})
    return codes


def _totp_step(settings: Settings, factor: UserMfaFactor, code: str) -> int | None:
    assert factor.secret_ciphertext is not None
    try:
        secret = decrypt_secret(
            settings.auth, user_id=factor.user_id, ciphertext=factor.secret_ciphertext
        )
    except SecretUnreadable:
        # auth.mfa_encryption_key changed since enrolment: no code can match; an admin can
        # reset the factor (resetUserMfa). Said once per attempt, never with the ciphertext.
        log.error("TOTP factor %s does not decrypt with the configured key", factor.id)
        return None
    return totp.matching_step(
        secret, code, now=settings.clock(), last_used_step=factor.last_used_step
    )


# --- the login challenge -------------------------------------------------------------------


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
    user_id = user.id
    assert user_id is not None
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
                await mfa_repo.consume_challenge(session, challenge_id=challenge.id)
                await login_attempts.mark_succeeded(session, attempt_id=attempt_id)
                signed_in = await user_repo.record_login(session, user_id=user_id) or user
                first_step = RequestMeta(
                    ip_address=str(challenge.ip_address) if challenge.ip_address else None,
                    user_agent=challenge.user_agent,
                    request_id=meta.request_id,
                )
                issued = await session_policy.start(
                    session,
                    settings.auth,
                    user=signed_in,
                    meta=first_step,
                    device_info=challenge.device_info,
                )
                left = await mfa_repo.count_unused_recovery_codes(session, user_id=user_id)
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
            attempts = await mfa_repo.count_attempt(session, challenge_id=challenge.id)
            ended = attempts >= settings.auth.mfa_max_attempts_per_challenge
            if ended:
                await mfa_repo.consume_challenge(session, challenge_id=challenge.id)
            await record(
                session,
                meta,
                "auth.mfa_failed",
                target_id=user.id,
                changes={"method": method, "attempts": attempts, "challenge_ended": ended},
            )
            failure = TOO_MANY if ended else INVALID_CODE
    if failure == INVALID_CODE:
        raise Unauthenticated(INVALID_CODE, reason="MFA_CODE_INVALID")
    raise Unauthenticated(failure, reason="MFA_CHALLENGE_INVALID")


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
        presented = _recovery_hash(settings, recovery_code)
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
    step = _totp_step(settings, factor, code)
    if step is None:
        return "totp", False
    await mfa_repo.mark_used(session, factor_id=factor.id, step=step)
    return "totp", True


# --- management -------------------------------------------------------------------------------


async def state(db: Database, *, user_id: uuid.UUID) -> MfaState:
    async with db.session() as session:
        factors = await mfa_repo.confirmed_factors(session, user_id=user_id)
        left = await mfa_repo.count_unused_recovery_codes(session, user_id=user_id)
    return MfaState(factors=factors, recovery_codes_left=left if factors else 0)


async def regenerate_recovery_codes(
    db: Database, settings: Settings, *, viewer: Viewer, password: str | None, meta: RequestMeta
) -> list[str]:
    """New recovery codes replace the old ones; every other session ends."""
    await require_fresh_auth(db, settings, viewer=viewer, password=password, meta=meta)
    user = viewer.user
    codes = [new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    async with db.transaction() as session:
        if not await mfa_repo.has_confirmed_factor(session, user_id=user.id):
            raise Conflict("No second factor is enrolled", reason="MFA_NOT_ENABLED")
        await mfa_repo.delete_recovery_codes(session, user_id=user.id)
        await mfa_repo.add_recovery_codes(
            session, user_id=user.id, code_hashes=[_recovery_hash(settings, c) for c in codes]
        )
        revoked = await session_repo.revoke_all_for_user(
            session,
            user_id=user.id,
            reason="mfa_codes_regenerated",
            except_session_id=viewer.session_id,
        )
        await record(
            session,
            meta,
            "auth.mfa_recovery_codes_regenerated",
            actor_id=user.id,
            target_id=user.id,
            changes={"revoked_sessions": revoked},
        )
    return codes


async def remove_factor(
    db: Database,
    settings: Settings,
    *,
    viewer: Viewer,
    factor_id: uuid.UUID,
    password: str,
    meta: RequestMeta,
) -> bool:
    """Needs the password. Removing the last factor also drops the recovery codes and ends
    every other session."""
    await require_fresh_auth(db, settings, viewer=viewer, password=password, meta=meta)
    user = viewer.user
    async with db.transaction() as session:
        removed = await mfa_repo.delete_factor(session, user_id=user.id, factor_id=factor_id)
        if removed is None:
            raise NotFound("No such factor", fields={"id": "no such factor"})
        revoked = 0
        last = not await mfa_repo.has_confirmed_factor(session, user_id=user.id)
        if last:
            await mfa_repo.delete_recovery_codes(session, user_id=user.id)
            revoked = await session_repo.revoke_all_for_user(
                session,
                user_id=user.id,
                reason="mfa_removed",
                except_session_id=viewer.session_id,
            )
        await record(
            session,
            meta,
            "auth.mfa_factor_removed",
            actor_id=user.id,
            target_id=user.id,
            changes={
                "factor_id": str(factor_id),
                "kind": removed.kind,
                "last": last,
                "revoked_sessions": revoked,
            },
        )
    return True
