"""Authentication state: one-time tokens, login attempts, second factors and their challenges."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlmodel import Field, SQLModel

from gql_api.models.columns import created_column, timestamp, user_fk, uuid_pk


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

    id: uuid.UUID | None = uuid_pk()
    user_id: uuid.UUID = user_fk()
    purpose: str = Field(sa_column=Column(String(32), nullable=False))
    token_hash: str = Field(sa_column=Column(String(64), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    used_at: datetime | None = timestamp()
    created_at: datetime | None = created_column()


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
    created_at: datetime | None = created_column()


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

    id: uuid.UUID | None = uuid_pk()
    user_id: uuid.UUID = user_fk()
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    secret_ciphertext: str | None = Field(default=None, sa_column=Column(Text))
    confirmed_at: datetime | None = timestamp()
    last_used_at: datetime | None = timestamp()
    last_used_step: int | None = Field(default=None, sa_column=Column(BigInteger))
    created_at: datetime | None = created_column()


class UserMfaRecoveryCode(SQLModel, table=True):
    """Single-use recovery codes, stored as keyed hashes (never the code itself)."""

    __tablename__ = "user_mfa_recovery_codes"
    __table_args__ = (Index("idx_user_mfa_recovery_codes_user_id", "user_id"),)

    id: uuid.UUID | None = uuid_pk()
    user_id: uuid.UUID = user_fk()
    code_hash: str = Field(sa_column=Column(String(64), nullable=False))
    used_at: datetime | None = timestamp()
    created_at: datetime | None = created_column()


class MfaChallenge(SQLModel, table=True):
    """The second step of a login: a hashed single-use token that remembers the first step's
    device, address and user agent, so the session verifyMfa creates carries them."""

    __tablename__ = "mfa_challenges"
    __table_args__ = (
        Index("idx_mfa_challenges_token_hash", "token_hash", unique=True),
        Index("idx_mfa_challenges_user_id", "user_id"),
        Index("idx_mfa_challenges_expires_at", "expires_at"),
    )

    id: uuid.UUID | None = uuid_pk()
    user_id: uuid.UUID = user_fk()
    token_hash: str = Field(sa_column=Column(String(64), nullable=False))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    attempts: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )
    device_info: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    ip_address: str | None = Field(default=None, sa_column=Column(INET))
    user_agent: str | None = Field(default=None, sa_column=Column(Text))
    consumed_at: datetime | None = timestamp()
    created_at: datetime | None = created_column()
