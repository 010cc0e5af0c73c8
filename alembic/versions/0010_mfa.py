"""Second factor: TOTP factors (rows of their own, room for WebAuthn), hashed recovery codes, and
the short-lived challenges a login with a factor returns instead of tokens.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column:
    return sa.Column(
        "id",
        postgresql.UUID(as_uuid=True),
        primary_key=True,
        server_default=sa.text("gen_random_uuid()"),
    )


def _user_id() -> sa.Column:
    return sa.Column(
        "user_id",
        postgresql.UUID(as_uuid=True),
        sa.ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
    )


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def upgrade() -> None:
    op.create_table(
        "user_mfa_factors",
        _id(),
        _user_id(),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("secret_ciphertext", sa.Text()),
        sa.Column("confirmed_at", sa.DateTime(timezone=True)),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
        sa.Column("last_used_step", sa.BigInteger()),
        _created_at(),
        sa.CheckConstraint("kind IN ('totp', 'webauthn')", name="ck_user_mfa_factors_kind"),
    )
    op.create_index("idx_user_mfa_factors_user_id", "user_mfa_factors", ["user_id"])
    # One TOTP factor per user, pending or confirmed: a new enrolment replaces a pending one.
    op.create_index(
        "idx_user_mfa_factors_one_totp",
        "user_mfa_factors",
        ["user_id"],
        unique=True,
        postgresql_where=sa.text("kind = 'totp'"),
    )

    op.create_table(
        "user_mfa_recovery_codes",
        _id(),
        _user_id(),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),
        _created_at(),
    )
    op.create_index("idx_user_mfa_recovery_codes_user_id", "user_mfa_recovery_codes", ["user_id"])

    op.create_table(
        "mfa_challenges",
        _id(),
        _user_id(),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("device_info", postgresql.JSONB()),
        sa.Column("ip_address", postgresql.INET()),
        sa.Column("user_agent", sa.Text()),
        sa.Column("consumed_at", sa.DateTime(timezone=True)),
        _created_at(),
    )
    op.create_index("idx_mfa_challenges_token_hash", "mfa_challenges", ["token_hash"], unique=True)
    op.create_index("idx_mfa_challenges_user_id", "mfa_challenges", ["user_id"])
    op.create_index("idx_mfa_challenges_expires_at", "mfa_challenges", ["expires_at"])


def downgrade() -> None:
    op.drop_table("mfa_challenges")
    op.drop_table("user_mfa_recovery_codes")
    op.drop_table("user_mfa_factors")
