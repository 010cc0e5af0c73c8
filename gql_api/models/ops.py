"""Operations: the audit log, persisted GraphQL documents, read-your-writes fences."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import INET, JSONB, UUID
from sqlmodel import Field, SQLModel

from gql_api.models.columns import created_column, uuid_pk


class AuditLog(SQLModel, table=True):
    """What happened, by whom, to whom. No foreign keys: entries outlive the users they name."""

    __tablename__ = "audit_logs"
    __table_args__ = (
        Index("idx_audit_logs_created_at_id", "created_at", "id"),
        Index("idx_audit_logs_actor_id", "actor_id"),
        Index("idx_audit_logs_target_id", "target_id"),
        Index("idx_audit_logs_action", "action"),
    )

    id: uuid.UUID | None = uuid_pk()
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
    created_at: datetime | None = created_column()


class PersistedQuery(SQLModel, table=True):
    """GraphQL documents by SHA-256: Apollo's automatic persisted queries, and the registered
    operations of trusted-documents mode (``trusted``). Shared by every replica."""

    __tablename__ = "persisted_queries"

    sha256: str = Field(sa_column=Column(String(64), primary_key=True))
    query: str = Field(sa_column=Column(Text, nullable=False))
    trusted: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=text("false"))
    )
    created_at: datetime | None = created_column()
    # Automatic entries unused for a while are evicted (least recently used first); a use is
    # recorded at most once per interval (graphql/persisted.py), never on every request.
    last_used_at: datetime | None = created_column()

    __table_args__ = (
        # The eviction order of automatic entries; trusted ones are never evicted.
        Index(
            "idx_persisted_queries_untrusted_last_used_at",
            "last_used_at",
            postgresql_where=text("NOT trusted"),
        ),
    )


class ReadFence(SQLModel, table=True):
    """Per user, the primary's WAL position (bytes) after their last write: their next reads go
    to a replica only once it has replayed that far (gql_api.db.replicas). No foreign key: a
    fence outliving its user is harmless, and the write path stays one statement."""

    __tablename__ = "read_fences"
    __table_args__ = (Index("idx_read_fences_written_at", "written_at"),)

    user_id: uuid.UUID = Field(sa_column=Column(UUID(as_uuid=True), primary_key=True))
    lsn: int = Field(sa_column=Column(BigInteger, nullable=False))
    written_at: datetime | None = created_column()
