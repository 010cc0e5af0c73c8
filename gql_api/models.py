"""SQLModel tables: the single source of columns for the ORM, the migrations and the GraphQL types.

The migrations in ``alembic/versions`` create exactly these tables (a test compares them). Secrets
(``password_hash``, ``token_hash``) live only here and in the repositories; GraphQL types list
their fields explicitly and never include them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import CITEXT, INET, JSONB, UUID
from sqlmodel import Field, SQLModel

metadata = SQLModel.metadata


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


class UserStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


class TokenPurpose(StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"


def _uuid_pk() -> Any:
    return Field(
        default=None,
        sa_column=Column(
            UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
        ),
    )


def _created_at() -> Any:
    return Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def _timestamp(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable))


def _user_fk(*, unique: bool = False, nullable: bool = False) -> Any:
    return Field(
        sa_column=Column(
            UUID(as_uuid=True),
            ForeignKey("users.id", ondelete="CASCADE"),
            nullable=nullable,
            unique=unique,
        )
    )


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('user', 'admin')", name="ck_users_role"),
        CheckConstraint("status IN ('active', 'inactive')", name="ck_users_status"),
        # CITEXT (migration 0011): case-insensitive uniqueness that the guide's
        # `ON CONFLICT (email)` can name.
        UniqueConstraint("email", name="users_email_key"),
        Index("idx_users_status", "status"),
        Index("idx_users_role", "role"),
        Index("idx_users_created_at", "created_at"),
        # Keyset pagination (migration 0006): one (sort key, id) index per `users` order, so a
        # page deep in the table is an index range scan like the first. A btree scans both ways,
        # so each serves ASC and DESC.
        Index("idx_users_created_at_id", "created_at", "id"),
        Index("idx_users_email_id", "email", "id"),
        Index("idx_users_last_name_id", "last_name", "id"),
        # NULL (never logged in) sorts as the oldest login, through a coalesce on both sides.
        Index(
            "idx_users_last_login_at_id",
            func.coalesce(text("last_login_at"), text("'-infinity'::timestamp with time zone")),
            text("id"),
        ),
        # Case-insensitive substring search (ILIKE '%term%') through pg_trgm, one per column.
        # pg_trgm's operator class is for text: the index (and the search) cast CITEXT to it.
        Index(
            "idx_users_email_trgm",
            text("(email::text) gin_trgm_ops"),
            postgresql_using="gin",
        ),
        Index(
            "idx_users_first_name_trgm",
            "first_name",
            postgresql_using="gin",
            postgresql_ops={"first_name": "gin_trgm_ops"},
        ),
        Index(
            "idx_users_last_name_trgm",
            "last_name",
            postgresql_using="gin",
            postgresql_ops={"last_name": "gin_trgm_ops"},
        ),
    )

    id: uuid.UUID | None = _uuid_pk()
    email: str = Field(sa_column=Column(CITEXT, nullable=False))
    password_hash: str = Field(sa_column=Column(String(255), nullable=False))
    first_name: str = Field(sa_column=Column(String(100), nullable=False))
    last_name: str = Field(sa_column=Column(String(100), nullable=False))
    role: str = Field(
        default=Role.USER.value,
        sa_column=Column(String(20), nullable=False, server_default=text("'user'")),
    )
    status: str = Field(
        default=UserStatus.ACTIVE.value,
        sa_column=Column(String(20), nullable=False, server_default=text("'active'")),
    )
    email_verified: bool = Field(
        default=False,
        sa_column=Column(Boolean, nullable=False, server_default=text("false")),
    )
    email_verified_at: datetime | None = _timestamp()
    password_changed_at: datetime | None = _timestamp()
    last_login_at: datetime | None = _timestamp()
    login_count: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )
    created_at: datetime | None = _created_at()
    updated_at: datetime | None = _created_at()


class UserSession(SQLModel, table=True):
    """One signed-in device. ``token_hash`` is the SHA-256 of the current refresh token."""

    __tablename__ = "user_sessions"
    __table_args__ = (
        Index("idx_user_sessions_user_id", "user_id"),
        Index("idx_user_sessions_token_hash", "token_hash", unique=True),
        Index("idx_user_sessions_previous_token_hash", "previous_token_hash"),
        Index("idx_user_sessions_expires_at", "expires_at"),
    )

    id: uuid.UUID | None = _uuid_pk()
    user_id: uuid.UUID = _user_fk()
    token_hash: str = Field(sa_column=Column(String(64), nullable=False))
    previous_token_hash: str | None = Field(default=None, sa_column=Column(String(64)))
    rotated_at: datetime | None = _timestamp()
    device_info: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    ip_address: str | None = Field(default=None, sa_column=Column(INET))
    user_agent: str | None = Field(default=None, sa_column=Column(Text))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    last_used_at: datetime | None = _created_at()
    revoked_at: datetime | None = _timestamp()
    revoked_reason: str | None = Field(default=None, sa_column=Column(String(50)))
    created_at: datetime | None = _created_at()
    # The guide's column, kept by the update_updated_at_column() trigger (migration 0011).
    updated_at: datetime | None = _created_at()


class UserProfile(SQLModel, table=True):
    __tablename__ = "user_profiles"

    id: uuid.UUID | None = _uuid_pk()
    user_id: uuid.UUID = _user_fk(unique=True)
    bio: str | None = Field(default=None, sa_column=Column(Text))
    avatar_url: str | None = Field(default=None, sa_column=Column(String(2048)))
    phone: str | None = Field(default=None, sa_column=Column(String(32)))
    timezone: str | None = Field(default=None, sa_column=Column(String(64)))
    locale: str | None = Field(default=None, sa_column=Column(String(35)))
    preferences: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    )
    created_at: datetime | None = _created_at()
    updated_at: datetime | None = _created_at()


class AuditLog(SQLModel, table=True):
    """What happened, by whom, to whom. No foreign keys: entries outlive the users they name."""

    __tablename__ = "audit_logs"
    __table_args__ = (
        Index("idx_audit_logs_created_at_id", "created_at", "id"),
        Index("idx_audit_logs_actor_id", "actor_id"),
        Index("idx_audit_logs_target_id", "target_id"),
        Index("idx_audit_logs_action", "action"),
    )

    id: uuid.UUID | None = _uuid_pk()
    actor_id: uuid.UUID | None = Field(default=None, sa_column=Column(UUID(as_uuid=True)))
    action: str = Field(sa_column=Column(String(64), nullable=False))
    target_type: str | None = Field(default=None, sa_column=Column(String(32)))
    target_id: uuid.UUID | None = Field(default=None, sa_column=Column(UUID(as_uuid=True)))
    changes: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    )
    ip_address: str | None = Field(default=None, sa_column=Column(INET))
    user_agent: str | None = Field(default=None, sa_column=Column(Text))
    request_id: str | None = Field(default=None, sa_column=Column(String(64)))
    created_at: datetime | None = _created_at()


class OneTimeToken(SQLModel, table=True):
    """E-mail verification and password reset tokens, stored as SHA-256, single use."""

    __tablename__ = "one_time_tokens"
    __table_args__ = (
        CheckConstraint(
            "purpose IN ('verify_email', 'reset_password')", name="ck_one_time_tokens_purpose"
        ),
        Index("idx_one_time_tokens_token_hash", "token_hash", unique=True),
        Index("idx_one_time_tokens_user_id", "user_id"),
        Index("idx_one_time_tokens_expires_at", "expires_at"),
    )

    id: uuid.UUID | None = _uuid_pk()
    user_id: uuid.UUID = _user_fk()
    purpose: str = Field(sa_column=Column(String(32), nullable=False))
    token_hash: str = Field(sa_column=Column(String(64), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    used_at: datetime | None = _timestamp()
    created_at: datetime | None = _created_at()


class LoginAttempt(SQLModel, table=True):
    """Failed logins and registrations, counted in PostgreSQL so every replica sees them."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("idx_login_attempts_email_created_at", "email", "created_at"),
        Index("idx_login_attempts_ip_created_at", "ip_address", "created_at"),
        Index("idx_login_attempts_created_at", "created_at"),
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=False), primary_key=True)
    )
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    email: str | None = Field(default=None, sa_column=Column(String(255)))
    ip_address: str | None = Field(default=None, sa_column=Column(INET))
    succeeded: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=text("false"))
    )
    # False while the password check of a login is still running.
    settled: bool = Field(
        default=True, sa_column=Column(Boolean, nullable=False, server_default=text("true"))
    )
    created_at: datetime | None = _created_at()


class PersistedQuery(SQLModel, table=True):
    """GraphQL documents by SHA-256: Apollo's automatic persisted queries, and the registered
    operations of trusted-documents mode (``trusted``). Shared by every replica."""

    __tablename__ = "persisted_queries"

    sha256: str = Field(sa_column=Column(String(64), primary_key=True))
    query: str = Field(sa_column=Column(Text, nullable=False))
    trusted: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=text("false"))
    )
    created_at: datetime | None = _created_at()
    # Automatic entries unused for a while are evicted (least recently used first); a use is
    # recorded at most once per interval (graphql/persisted.py), never on every request.
    last_used_at: datetime | None = _created_at()

    __table_args__ = (
        # The eviction order of automatic entries; trusted ones are never evicted.
        Index(
            "idx_persisted_queries_untrusted_last_used_at",
            "last_used_at",
            postgresql_where=text("NOT trusted"),
        ),
    )


class MfaFactorKind(StrEnum):
    TOTP = "totp"
    WEBAUTHN = "webauthn"


class UserMfaFactor(SQLModel, table=True):
    """One second factor of a user (rows of their own, so WebAuthn keys can join TOTP later).

    ``confirmed_at`` is NULL while an enrolment is pending; ``last_used_step`` is the TOTP time
    step last accepted, so a code is never accepted twice. ``secret_ciphertext`` is encrypted
    with a key derived from ``auth.mfa_encryption_key`` (gql_api/auth/mfa_crypto.py)."""

    __tablename__ = "user_mfa_factors"
    __table_args__ = (
        CheckConstraint("kind IN ('totp', 'webauthn')", name="ck_user_mfa_factors_kind"),
        Index("idx_user_mfa_factors_user_id", "user_id"),
        # One TOTP factor per user, pending or confirmed: a new enrolment replaces a pending one.
        Index(
            "idx_user_mfa_factors_one_totp",
            "user_id",
            unique=True,
            postgresql_where=text("kind = 'totp'"),
        ),
    )

    id: uuid.UUID | None = _uuid_pk()
    user_id: uuid.UUID = _user_fk()
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    secret_ciphertext: str | None = Field(default=None, sa_column=Column(Text))
    confirmed_at: datetime | None = _timestamp()
    last_used_at: datetime | None = _timestamp()
    last_used_step: int | None = Field(default=None, sa_column=Column(BigInteger))
    created_at: datetime | None = _created_at()


class UserMfaRecoveryCode(SQLModel, table=True):
    """Single-use recovery codes, stored as keyed hashes (never the code itself)."""

    __tablename__ = "user_mfa_recovery_codes"
    __table_args__ = (Index("idx_user_mfa_recovery_codes_user_id", "user_id"),)

    id: uuid.UUID | None = _uuid_pk()
    user_id: uuid.UUID = _user_fk()
    code_hash: str = Field(sa_column=Column(String(64), nullable=False))
    used_at: datetime | None = _timestamp()
    created_at: datetime | None = _created_at()


class MfaChallenge(SQLModel, table=True):
    """The second step of a login: a hashed single-use token that remembers the first step's
    device, address and user agent, so the session verifyMfa creates carries them."""

    __tablename__ = "mfa_challenges"
    __table_args__ = (
        Index("idx_mfa_challenges_token_hash", "token_hash", unique=True),
        Index("idx_mfa_challenges_user_id", "user_id"),
        Index("idx_mfa_challenges_expires_at", "expires_at"),
    )

    id: uuid.UUID | None = _uuid_pk()
    user_id: uuid.UUID = _user_fk()
    token_hash: str = Field(sa_column=Column(String(64), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    attempts: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )
    device_info: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    ip_address: str | None = Field(default=None, sa_column=Column(INET))
    user_agent: str | None = Field(default=None, sa_column=Column(Text))
    consumed_at: datetime | None = _timestamp()
    created_at: datetime | None = _created_at()


class ReadFence(SQLModel, table=True):
    """Per user, the primary's WAL position (bytes) after their last write: their next reads go
    to a replica only once it has replayed that far (gql_api.db.replicas). No foreign key: a
    fence outliving its user is harmless, and the write path stays one statement."""

    __tablename__ = "read_fences"

    user_id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), primary_key=True))
    lsn: int = Field(sa_column=Column(BigInteger, nullable=False))
    written_at: datetime | None = _created_at()


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
