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
from gql_api.models.users import User, UserProfile, UserSession

metadata = SQLModel.metadata

SECRET_COLUMNS = frozenset(
    {"password_hash", "token_hash", "previous_token_hash", "secret_ciphertext", "code_hash"}
)


def public_columns(model: type[SQLModel]) -> tuple[Column[Any], ...]:
    """The columns of a table that a read path may select: all but the secrets."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    return tuple(column for column in table.c if column.name not in SECRET_COLUMNS)


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
    "UserMfaFactor",
    "UserMfaRecoveryCode",
    "UserProfile",
    "UserSession",
    "UserStatus",
    "metadata",
    "public_columns",
]
