"""A user's factors: TOTP enrolment, its state, new recovery codes, removal. Each change needs a
recent password check (``reauth``) and commits with its audit entry."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from gql_api.config import Settings
from gql_api.db import Database
from gql_api.errors import BadUserInput, Conflict, NotFound
from gql_api.models import MfaFactorKind, UserMfaFactor
from gql_api.realtime import events as realtime
from gql_api.repositories import login_attempts
from gql_api.repositories import mfa as mfa_repo
from gql_api.repositories import sessions as session_repo

from .. import rate_limits, totp
from ..current import Viewer
from ..events import RequestMeta, record
from ..mfa_crypto import encrypt_secret
from .codes import RECOVERY_CODE_COUNT, new_recovery_code, recovery_hash, totp_step
from .reauth import require_fresh_auth

INVALID_CODE = "Invalid code"


@dataclass(frozen=True)
class Enrollment:
    factor_id: uuid.UUID
    secret: str
    uri: str
    qr_svg: str


@dataclass(frozen=True)
class MfaState:
    factors: list[UserMfaFactor]
    recovery_codes_left: int

    @property
    def enabled(self) -> bool:
        return bool(self.factors)


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
        step = totp_step(settings, factor, code)
        if step is not None:
            await login_attempts.mark_succeeded(session, attempt_id=attempt_id)
            await mfa_repo.mark_used(session, factor_id=factor.id, step=step, confirm=True)
            await mfa_repo.delete_recovery_codes(session, user_id=user.id)
            await mfa_repo.add_recovery_codes(
                session, user_id=user.id, code_hashes=[recovery_hash(settings, c) for c in codes]
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
            session, user_id=user.id, code_hashes=[recovery_hash(settings, c) for c in codes]
        )
        revoked = await session_repo.revoke_all_for_user(
            session,
            user_id=user.id,
            reason="mfa_codes_regenerated",
            except_session_id=viewer.session_id,
        )
        if revoked:
            await realtime.publish(
                session,
                realtime.sessions_revoked(
                    user.id, reason="mfa_codes_regenerated", except_session_id=viewer.session_id
                ),
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
            if revoked:
                await realtime.publish(
                    session,
                    realtime.sessions_revoked(
                        user.id, reason="mfa_removed", except_session_id=viewer.session_id
                    ),
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
