"""SQLModel tables: the single source of columns for the ORM, the migrations and the GraphQL types.

The migrations in ``alembic/versions`` create exactly these tables (a test compares them). Secrets
(``password_hash``, ``token_hash``) live only here and in the repositories; GraphQL types list
their fields explicitly and never include them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Table
from sqlmodel import SQLModel

from gql_api.models.auth import (
    LoginAttempt,
    MfaChallenge,
    OneTimeToken,
    UserMfaFactor,
    UserMfaRecoveryCode,
)
from gql_api.models.enums import MfaFactorKind, Role, TokenPurpose, UserStatus
from gql_api.models.ops import AuditLog, PersistedQuery, ReadFence
from gql_api.models.users import User, UserCount, UserProfile, UserSession

metadata = SQLModel.metadata

SECRET_COLUMNS = frozenset(
    {"password_hash", "token_hash", "previous_token_hash", "secret_ciphertext", "code_hash"}
)


def public_columns(model: type[SQLModel]) -> tuple[Column[Any], ...]:
    """The columns of a table that a read path may select: all but the secrets."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    return tuple(column for column in table.c if column.name not in SECRET_COLUMNS)


def public_columns_among(
    model: type[SQLModel], names: frozenset[str] | None, *, keys: tuple[str, ...] = ()
) -> tuple[Column[Any], ...]:
    """The public columns named in ``names`` and ``keys``, in table order: what a read that
    knows its selection needs. All public columns for None, or when a name is not one of
    them (a secret never is)."""
    public = public_columns(model)
    if names is None:
        return public
    wanted = names | set(keys)
    if not wanted <= {column.name for column in public}:
        return public
    return tuple(column for column in public if column.name in wanted)


# The one list of user columns that reads select (the GraphQL User type shows them); only the
# repository functions that check or change a password read password_hash.
USER_PUBLIC_COLUMNS = public_columns(User)

__all__ = [
    "SECRET_COLUMNS",
    "USER_PUBLIC_COLUMNS",
    "AuditLog",
    "LoginAttempt",
    "MfaChallenge",
    "MfaFactorKind",
    "OneTimeToken",
    "PersistedQuery",
    "ReadFence",
    "Role",
    "TokenPurpose",
    "User",
    "UserCount",
    "UserMfaFactor",
    "UserMfaRecoveryCode",
    "UserProfile",
    "UserSession",
    "UserStatus",
    "metadata",
    "public_columns",
    "public_columns_among",
]
