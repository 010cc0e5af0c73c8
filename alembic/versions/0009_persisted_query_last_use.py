"""Persisted queries: ``last_used_at``, so that automatic entries unused for a while, or beyond
the store's budget, are evicted least recently used first (trusted ones never are).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing entries count as used now: they get one idle period before they may go.
    op.add_column(
        "persisted_queries",
        sa.Column(
            "last_used_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
    )
    op.create_index(
        "idx_persisted_queries_untrusted_last_used_at",
        "persisted_queries",
        ["last_used_at"],
        postgresql_where=sa.text("NOT trusted"),
    )


def downgrade() -> None:
    op.drop_index("idx_persisted_queries_untrusted_last_used_at", table_name="persisted_queries")
    op.drop_column("persisted_queries", "last_used_at")
