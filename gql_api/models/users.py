"""Users, their profiles and their sessions."""

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
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import CITEXT, INET, JSONB
from sqlmodel import Field, SQLModel

from gql_api.models.columns import created_column, timestamp, user_fk, uuid_pk
from gql_api.models.enums import Role, UserStatus


class User(SQLModel, table=True):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('user', 'admin')", name="ck_users_role"),
        CheckConstraint("status IN ('active', 'inactive')", name="ck_users_status"),
        # CITEXT (migration 0011): case-insensitive uniqueness that the guide's
        # `ON CONFLICT (email)` can name.
        UniqueConstraint("email", name="users_email_key"),
        Index("idx_users_status", "status"),
        # The admins' filter by role and status, counted index-only (migration 0013).
        Index("idx_users_role_status", "role", "status"),
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

    id: uuid.UUID | None = uuid_pk()
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
    email_verified_at: datetime | None = timestamp()
    password_changed_at: datetime | None = timestamp()
    last_login_at: datetime | None = timestamp()
    login_count: int = Field(
        default=0, sa_column=Column(Integer, nullable=False, server_default=text("0"))
    )
    created_at: datetime | None = created_column()
    updated_at: datetime | None = created_column()


class UserSession(SQLModel, table=True):
    """One signed-in device. ``token_hash`` is the SHA-256 of the current refresh token."""

    __tablename__ = "user_sessions"
    __table_args__ = (
        Index("idx_user_sessions_user_id", "user_id"),
        Index("idx_user_sessions_token_hash", "token_hash", unique=True),
        Index("idx_user_sessions_previous_token_hash", "previous_token_hash"),
        Index("idx_user_sessions_expires_at", "expires_at"),
    )

    id: uuid.UUID | None = uuid_pk()
    user_id: uuid.UUID = user_fk()
    token_hash: str = Field(sa_column=Column(String(64), nullable=False))
    previous_token_hash: str | None = Field(default=None, sa_column=Column(String(64)))
    rotated_at: datetime | None = timestamp()
    device_info: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    ip_address: str | None = Field(default=None, sa_column=Column(INET))
    user_agent: str | None = Field(default=None, sa_column=Column(Text))
    expires_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    last_used_at: datetime | None = created_column()
    revoked_at: datetime | None = timestamp()
    revoked_reason: str | None = Field(default=None, sa_column=Column(String(50)))
    created_at: datetime | None = created_column()
    # The guide's column, kept by the update_updated_at_column() trigger (migration 0011).
    updated_at: datetime | None = created_column()


class UserProfile(SQLModel, table=True):
    __tablename__ = "user_profiles"

    id: uuid.UUID | None = uuid_pk()
    user_id: uuid.UUID = user_fk(unique=True)
    bio: str | None = Field(default=None, sa_column=Column(Text))
    avatar_url: str | None = Field(default=None, sa_column=Column(String(2048)))
    phone: str | None = Field(default=None, sa_column=Column(String(32)))
    timezone: str | None = Field(default=None, sa_column=Column(String(64)))
    locale: str | None = Field(default=None, sa_column=Column(String(35)))
    preferences: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    )
    created_at: datetime | None = created_column()
    updated_at: datetime | None = created_column()


class UserCount(SQLModel, table=True):
    """How many users each (role, status) has: kept exact by triggers on ``users`` (migration
    0014), so that a page's ``totalCount`` over all users, or over a role and a status, reads a
    row or two instead of counting the table (most of a users page's PostgreSQL time).

    Exact in every snapshot: a statement that adds, removes or moves users updates these rows
    in its own transaction, so a reader sees the counts of the users it sees."""

    __tablename__ = "user_counts"

    role: str = Field(sa_column=Column(String(20), primary_key=True))
    status: str = Field(sa_column=Column(String(20), primary_key=True))
    users: int = Field(sa_column=Column(BigInteger, nullable=False))
