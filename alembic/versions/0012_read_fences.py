"""Read fences: per user, the primary's WAL position after that user's last write, so that a
server process (any of them) sends the user's next staleness-tolerant reads only to a replica
that has replayed that far (gql_api.db.replicas).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "read_fences",
        sa.Column("user_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("lsn", sa.BigInteger(), nullable=False),
        sa.Column(
            "written_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    # Periodic cleanup removes fences every replica has replayed, oldest first.
    op.create_index("idx_read_fences_written_at", "read_fences", ["written_at"])


def downgrade() -> None:
    op.drop_index("idx_read_fences_written_at", table_name="read_fences")
    op.drop_table("read_fences")
