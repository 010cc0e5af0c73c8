"""One-time tokens (e-mail verification, password reset) and login attempts (brute-force limits).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "one_time_tokens",
        sa.Column(
            "id",
            postgresql.UUID(as_uuid=True),
            primary_key=True,
            server_default=sa.text("gen_random_uuid()"),
        ),
        sa.Column(
            "user_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "purpose IN ('verify_email', 'reset_password')", name="ck_one_time_tokens_purpose"
        ),
    )
    op.create_index("idx_one_time_tokens_token_hash", "one_time_tokens", ["token_hash"], unique=True)
    op.create_index("idx_one_time_tokens_user_id", "one_time_tokens", ["user_id"])
    op.create_index("idx_one_time_tokens_expires_at", "one_time_tokens", ["expires_at"])

    op.create_table(
        "login_attempts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("email", sa.String(255)),
        sa.Column("ip_address", postgresql.INET()),
        sa.Column("succeeded", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index(
        "idx_login_attempts_email_created_at", "login_attempts", ["email", "created_at"]
    )
    op.create_index(
        "idx_login_attempts_ip_created_at", "login_attempts", ["ip_address", "created_at"]
    )
    op.create_index("idx_login_attempts_created_at", "login_attempts", ["created_at"])


def downgrade() -> None:
    op.drop_table("login_attempts")
    op.drop_table("one_time_tokens")
