"""Second factors, recovery codes and login challenges.

Every function works inside the caller's transaction and never commits. Secrets arrive already
encrypted or hashed (``gql_api.auth.mfa_crypto``); nothing here sees a code in clear.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gql_api.models import MfaChallenge, UserMfaFactor, UserMfaRecoveryCode
from gql_api.repositories.row_source import RowSource

# --- factors -------------------------------------------------------------------------------


async def confirmed_factors(session: AsyncSession, *, user_id: uuid.UUID) -> list[UserMfaFactor]:
    statement = (
        select(UserMfaFactor)
        .where(
            col(UserMfaFactor.user_id) == user_id,
            col(UserMfaFactor.confirmed_at).is_not(None),
        )
        .order_by(col(UserMfaFactor.created_at), col(UserMfaFactor.id))
    )
    return list((await session.execute(statement)).scalars().all())


async def has_confirmed_factor(session: AsyncSession, *, user_id: uuid.UUID) -> bool:
    statement = select(
        select(UserMfaFactor.id)  # type: ignore[call-overload]
        .where(
            col(UserMfaFactor.user_id) == user_id,
            col(UserMfaFactor.confirmed_at).is_not(None),
        )
        .exists()
    )
    return bool((await session.execute(statement)).scalar_one())


_CONFIRMED_FACTOR_OF_USER = (
    select(UserMfaFactor.id)  # type: ignore[call-overload]
    .where(
        col(UserMfaFactor.user_id) == bindparam("user_id"),
        col(UserMfaFactor.confirmed_at).is_not(None),
    )
    .limit(1)
)


async def confirmed_factor_exists(db: RowSource, *, user_id: uuid.UUID) -> bool:
    """:func:`has_confirmed_factor` as one autocommit read (the admin's per-request check)."""
    return bool(await db.fetch(_CONFIRMED_FACTOR_OF_USER, {"user_id": user_id}))


async def lock_totp(session: AsyncSession, *, user_id: uuid.UUID) -> UserMfaFactor | None:
    """The user's TOTP factor (pending or confirmed), locked FOR UPDATE: code checks of one
    factor run one after the other, so a code cannot be accepted twice by concurrent calls."""
    statement = (
        select(UserMfaFactor)
        .where(col(UserMfaFactor.user_id) == user_id, col(UserMfaFactor.kind) == "totp")
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def replace_pending_totp(
    session: AsyncSession, *, user_id: uuid.UUID, secret_ciphertext: str
) -> UserMfaFactor | None:
    """A new pending TOTP factor replacing a pending one; None when a confirmed one exists."""
    await session.execute(
        delete(UserMfaFactor).where(
            col(UserMfaFactor.user_id) == user_id,
            col(UserMfaFactor.kind) == "totp",
            col(UserMfaFactor.confirmed_at).is_(None),
        )
    )
    statement = (
        insert(UserMfaFactor)
        .values(user_id=user_id, kind="totp", secret_ciphertext=secret_ciphertext)
        .on_conflict_do_nothing()
        .returning(UserMfaFactor)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def mark_used(
    session: AsyncSession,
    *,
    factor_id: uuid.UUID,
    step: int,
    confirm: bool = False,
) -> None:
    values: dict[str, Any] = {"last_used_step": step, "last_used_at": func.now()}
    if confirm:
        values["confirmed_at"] = func.now()
    await session.execute(
        update(UserMfaFactor).where(col(UserMfaFactor.id) == factor_id).values(**values)
    )


async def delete_factor(
    session: AsyncSession, *, user_id: uuid.UUID, factor_id: uuid.UUID
) -> UserMfaFactor | None:
    statement = (
        delete(UserMfaFactor)
        .where(col(UserMfaFactor.id) == factor_id, col(UserMfaFactor.user_id) == user_id)
        .returning(UserMfaFactor)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def delete_all(session: AsyncSession, *, user_id: uuid.UUID) -> int:
    """Every factor, recovery code and open challenge of the user; returns the factors removed."""
    result = await session.execute(
        delete(UserMfaFactor).where(col(UserMfaFactor.user_id) == user_id)
    )
    await delete_recovery_codes(session, user_id=user_id)
    await session.execute(delete(MfaChallenge).where(col(MfaChallenge.user_id) == user_id))
    return int(result.rowcount)  # type: ignore[attr-defined]


# --- recovery codes -------------------------------------------------------------------------


async def delete_recovery_codes(session: AsyncSession, *, user_id: uuid.UUID) -> None:
    await session.execute(
        delete(UserMfaRecoveryCode).where(col(UserMfaRecoveryCode.user_id) == user_id)
    )


async def add_recovery_codes(
    session: AsyncSession, *, user_id: uuid.UUID, code_hashes: Sequence[str]
) -> None:
    await session.execute(
        insert(UserMfaRecoveryCode),
        [{"user_id": user_id, "code_hash": h} for h in code_hashes],
    )


async def unused_recovery_codes(
    session: AsyncSession, *, user_id: uuid.UUID
) -> list[UserMfaRecoveryCode]:
    """The unused codes, locked FOR UPDATE so that one code is spent once under concurrency."""
    statement = (
        select(UserMfaRecoveryCode)
        .where(
            col(UserMfaRecoveryCode.user_id) == user_id,
            col(UserMfaRecoveryCode.used_at).is_(None),
        )
        .order_by(col(UserMfaRecoveryCode.id))
        .with_for_update()
    )
    return list((await session.execute(statement)).scalars().all())


async def spend_recovery_code(session: AsyncSession, *, code_id: uuid.UUID) -> bool:
    result = await session.execute(
        update(UserMfaRecoveryCode)
        .where(col(UserMfaRecoveryCode.id) == code_id, col(UserMfaRecoveryCode.used_at).is_(None))
        .values(used_at=func.now())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def count_unused_recovery_codes(session: AsyncSession, *, user_id: uuid.UUID) -> int:
    statement = select(func.count()).where(
        col(UserMfaRecoveryCode.user_id) == user_id,
        col(UserMfaRecoveryCode.used_at).is_(None),
    )
    return int((await session.execute(statement)).scalar_one())


# --- challenges -----------------------------------------------------------------------------


async def create_challenge(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    token_hash: str,
    expires_at: datetime,
    device_info: dict[str, Any] | None,
    ip_address: str | None,
    user_agent: str | None,
) -> MfaChallenge:
    statement = (
        insert(MfaChallenge)
        .values(
            user_id=user_id,
            token_hash=token_hash,
            expires_at=expires_at,
            device_info=device_info,
            ip_address=ip_address,
            user_agent=user_agent,
        )
        .returning(MfaChallenge)
    )
    return (await session.execute(statement)).scalar_one()


async def find_challenge(
    session: AsyncSession, *, token_hash: str, lock: bool = False
) -> MfaChallenge | None:
    """The challenge with this token hash; ``lock`` takes it FOR UPDATE, so that concurrent
    verifications of one challenge run one after the other."""
    statement = select(MfaChallenge).where(col(MfaChallenge.token_hash) == token_hash)
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return (await session.execute(statement)).scalar_one_or_none()


async def count_attempt(session: AsyncSession, *, challenge_id: uuid.UUID) -> int:
    """One more wrong code on the challenge; returns the attempts so far."""
    statement = (
        update(MfaChallenge)
        .where(col(MfaChallenge.id) == challenge_id)
        .values(attempts=MfaChallenge.attempts + 1)
        .returning(col(MfaChallenge.attempts))
    )
    return int((await session.execute(statement)).scalar_one())


async def consume_challenge(session: AsyncSession, *, challenge_id: uuid.UUID) -> None:
    await session.execute(
        update(MfaChallenge)
        .where(col(MfaChallenge.id) == challenge_id)
        .values(consumed_at=func.now())
    )


async def delete_expired_challenges(session: AsyncSession, *, batch: int) -> int:
    """At most ``batch`` login challenges past their expiry (gql_api.ops.maintenance): nothing
    can use them any more, consumed or not."""
    doomed = (
        select(col(MfaChallenge.id))
        .where(col(MfaChallenge.expires_at) < func.now())
        .limit(batch)
        .scalar_subquery()
    )
    result = await session.execute(delete(MfaChallenge).where(col(MfaChallenge.id).in_(doomed)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
