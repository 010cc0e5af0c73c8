"""Seed data: a first admin and the two test users of the seed service (idempotent)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col

from gql_api.auth.passwords import hash_password
from gql_api.db import Database
from gql_api.models import Role, User, UserProfile

DEFAULT_ADMIN_EMAIL = "admin@api-server.com"
TEST_USERS = (
    ("john.doe@example.com", "John", "Doe"),
    ("jane.smith@example.com", "Jane", "Smith"),
)


@dataclass(frozen=True)
class SeededAccount:
    email: str
    password: str | None  # None when the account already existed (its password is unchanged)
    role: str


def generate_password() -> str:
    return secrets.token_urlsafe(18)


async def count_users(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(User))).scalar_one())


async def _ensure_user(
    db: Database, *, email: str, password: str, first: str, last: str, role: Role, rounds: int
) -> bool:
    """Insert the user and its profile unless the e-mail exists; True when it was created."""
    password_hash = await hash_password(password, rounds)
    async with db.transaction() as session:
        statement = (
            insert(User)
            .values(
                email=email.lower(),
                password_hash=password_hash,
                first_name=first,
                last_name=last,
                role=role.value,
                email_verified=True,
                email_verified_at=func.now(),
            )
            .on_conflict_do_nothing(index_elements=[func.lower(User.email)])  # type: ignore[arg-type]
            .returning(col(User.id))
        )
        user_id = (await session.execute(statement)).scalar_one_or_none()
        if user_id is None:
            return False
        await session.execute(insert(UserProfile).values(user_id=user_id, preferences={}))
        return True


async def seed_defaults(
    db: Database,
    *,
    admin_email: str = DEFAULT_ADMIN_EMAIL,
    admin_password: str | None = None,
    rounds: int = 12,
    with_test_users: bool = True,
) -> list[SeededAccount]:
    """Create the admin (and test users) where missing; report passwords only for new accounts."""
    accounts: list[SeededAccount] = []
    password = admin_password or generate_password()
    created = await _ensure_user(
        db,
        email=admin_email,
        password=password,
        first="Admin",
        last="User",
        role=Role.ADMIN,
        rounds=rounds,
    )
    accounts.append(SeededAccount(admin_email, password if created else None, Role.ADMIN.value))
    if with_test_users:
        for email, first, last in TEST_USERS:
            password = generate_password()
            created = await _ensure_user(
                db,
                email=email,
                password=password,
                first=first,
                last=last,
                role=Role.USER,
                rounds=rounds,
            )
            accounts.append(SeededAccount(email, password if created else None, Role.USER.value))
    return accounts
