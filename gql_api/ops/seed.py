"""Seed data as the guide has it (idempotent): the admin ``admin@api-server.com`` ("System
Administrator") and, on request in development, the test users ``user1@test.com`` and
``user2@test.com`` ("Test User1", "Test User2": role user, e-mail not verified)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from gql_api.auth.passwords import hash_password
from gql_api.db import Database
from gql_api.models import Role
from gql_api.repositories import users as user_repo

DEFAULT_ADMIN_EMAIL = "admin@api-server.com"
ADMIN_NAME = ("System", "Administrator")
TEST_USERS = (
    ("user1@test.com", "Test", "User1"),
    ("user2@test.com", "Test", "User2"),
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
        return await user_repo.count_all(session)


async def _ensure_user(
    db: Database,
    *,
    email: str,
    password: str,
    first: str,
    last: str,
    role: Role,
    rounds: int,
    verified: bool,
) -> bool:
    """Insert the user and its profile unless the e-mail exists; True when it was created."""
    password_hash = await hash_password(password, rounds)
    async with db.transaction() as session:
        created = await user_repo.create_user(
            session,
            email=email.lower(),
            password_hash=password_hash,
            first_name=first,
            last_name=last,
            role=role,
            email_verified=verified,
        )
    return created is not None


async def seed_defaults(
    db: Database,
    *,
    admin_email: str = DEFAULT_ADMIN_EMAIL,
    admin_password: str | None = None,
    rounds: int = 12,
    with_test_users: bool = False,
) -> list[SeededAccount]:
    """Create the admin (and test users) where missing; report passwords only for new accounts."""
    accounts: list[SeededAccount] = []
    password = admin_password or generate_password()
    created = await _ensure_user(
        db,
        email=admin_email,
        password=password,
        first=ADMIN_NAME[0],
        last=ADMIN_NAME[1],
        role=Role.ADMIN,
        rounds=rounds,
        verified=True,
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
                verified=False,
            )
            accounts.append(SeededAccount(email, password if created else None, Role.USER.value))
    return accounts
