"""Users: look-ups, creation (with the profile), login bookkeeping, password and status changes.

Every function works inside the caller's transaction and never commits.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gql_api.models import Role, User, UserProfile, UserStatus
from gql_api.repositories import sessions


async def get_by_id(session: AsyncSession, *, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def count_all(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(User))).scalar_one())


async def get_by_email(session: AsyncSession, *, email: str) -> User | None:
    """The column is CITEXT: the comparison ignores case and uses the unique index."""
    statement = select(User).where(col(User.email) == email)
    return (await session.execute(statement)).scalar_one_or_none()


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password_hash: str,
    first_name: str,
    last_name: str,
    role: Role = Role.USER,
    status: UserStatus = UserStatus.ACTIVE,
    email_verified: bool = False,
) -> User | None:
    """Insert the user and its (empty) profile; None when the e-mail is already taken.

    ``ON CONFLICT DO NOTHING`` against the unique CITEXT email makes two concurrent
    registrations of one address answer "taken" to the loser instead of failing the transaction
    (and makes the seed idempotent, whatever the address's spelling).
    """
    statement = (
        insert(User)
        .values(
            email=email,
            password_hash=password_hash,
            first_name=first_name,
            last_name=last_name,
            role=role.value,
            status=status.value,
            email_verified=email_verified,
            email_verified_at=func.now() if email_verified else None,
        )
        .on_conflict_do_nothing()
        .returning(User)
    )
    user = (await session.execute(statement)).scalar_one_or_none()
    if user is None:
        return None
    await session.execute(insert(UserProfile).values(user_id=user.id))
    return user


async def record_login(session: AsyncSession, *, user_id: uuid.UUID) -> User | None:
    """One atomic UPDATE, so concurrent logins never lose an increment; returns the new row."""
    statement = (
        update(User)
        .where(User.id == user_id)  # type: ignore[arg-type]
        .values(login_count=User.login_count + 1, last_login_at=func.now())
        .returning(User)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def upgrade_password_hash(
    session: AsyncSession, *, user_id: uuid.UUID, old_hash: str, new_hash: str
) -> bool:
    """Replace a hash made with an old cost; a no-op if the password changed meanwhile."""
    result = await session.execute(
        update(User)
        .where(User.id == user_id, User.password_hash == old_hash)  # type: ignore[arg-type]
        .values(password_hash=new_hash)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def set_password(
    session: AsyncSession, *, user_id: uuid.UUID, password_hash: str
) -> User | None:
    """A new password chosen by the user; what happens to its sessions is the caller's call."""
    statement = (
        update(User)
        .where(User.id == user_id)  # type: ignore[arg-type]
        .values(password_hash=password_hash, password_changed_at=func.now(), updated_at=func.now())
        .returning(User)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def mark_email_verified(session: AsyncSession, *, user_id: uuid.UUID) -> User | None:
    statement = (
        update(User)
        .where(User.id == user_id)  # type: ignore[arg-type]
        .values(
            email_verified=True,
            email_verified_at=func.coalesce(User.email_verified_at, func.now()),
            updated_at=func.now(),
        )
        .returning(User)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def set_status(
    session: AsyncSession, *, user_id: uuid.UUID, status: UserStatus
) -> User | None:
    """Change the status; deactivating also revokes every session in the same transaction, so
    the user's tokens stop working on the very next request."""
    statement = (
        update(User)
        .where(User.id == user_id)  # type: ignore[arg-type]
        .values(status=status.value, updated_at=func.now())
        .returning(User)
        .execution_options(populate_existing=True)
    )
    user = (await session.execute(statement)).scalar_one_or_none()
    if user is not None and status == UserStatus.INACTIVE:
        await sessions.revoke_all_for_user(session, user_id=user_id, reason="user_deactivated")
    return user


# --- admin ---
# Reads and writes for the admin mutations (createUser/updateUser/deleteUser) and updateMe.


async def lock_active_admin_ids(session: AsyncSession) -> list[uuid.UUID]:
    """Lock every active admin row (in id order, so concurrent callers queue instead of
    deadlocking) and return their ids.

    Whoever holds these locks may safely decide "another active admin remains": a concurrent
    demotion waits here, and once it proceeds PostgreSQL re-checks each locked row against the
    WHERE clause, so it sees the first demotion's result.
    """
    statement = (
        select(User.id)  # type: ignore[call-overload]
        .where(User.role == Role.ADMIN.value, User.status == UserStatus.ACTIVE.value)
        .order_by(User.id)
        .with_for_update()
    )
    return list((await session.execute(statement)).scalars().all())


async def get_for_update(session: AsyncSession, *, user_id: uuid.UUID) -> User | None:
    statement = (
        select(User)
        .where(User.id == user_id)  # type: ignore[arg-type]
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def update_fields(
    session: AsyncSession, *, user_id: uuid.UUID, values: dict[str, Any]
) -> User | None:
    """Set plain columns (names, role, email_verified...); status goes through set_status.
    ``email_verified_at`` follows ``email_verified``: now when set, NULL when cleared."""
    if "email_verified" in values and "email_verified_at" not in values:
        values = {**values, "email_verified_at": func.now() if values["email_verified"] else None}
    statement = (
        update(User)
        .where(User.id == user_id)  # type: ignore[arg-type]
        .values(**values, updated_at=func.now())
        .returning(User)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def delete_user(session: AsyncSession, *, user_id: uuid.UUID) -> bool:
    """Delete the user; its profile, sessions and one-time tokens go by ON DELETE CASCADE.
    Audit entries stay: audit_logs has no foreign keys."""
    result = await session.execute(delete(User).where(User.id == user_id))  # type: ignore[arg-type]
    return bool(result.rowcount)  # type: ignore[attr-defined]
