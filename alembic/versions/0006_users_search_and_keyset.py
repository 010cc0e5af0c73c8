"""Users: pg_trgm search indexes and (sort key, id) keyset indexes for the `users` connection.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TRIGRAM_COLUMNS = ("email", "first_name", "last_name")


def upgrade() -> None:
    # pg_trgm ships with PostgreSQL (contrib); it lets GIN indexes answer ILIKE '%term%'.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in _TRIGRAM_COLUMNS:
        op.create_index(
            f"idx_users_{column}_trgm",
            "users",
            [column],
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        )
    op.create_index("idx_users_created_at_id", "users", ["created_at", "id"])
    op.create_index("idx_users_email_id", "users", ["email", "id"])
    op.create_index("idx_users_last_name_id", "users", ["last_name", "id"])
    # Never logged in (NULL) sorts as the oldest login in both directions.
    op.create_index(
        "idx_users_last_login_at_id",
        "users",
        [sa.text("COALESCE(last_login_at, '-infinity'::timestamp with time zone)"), sa.text("id")],
    )


def downgrade() -> None:
    op.drop_index("idx_users_last_login_at_id", table_name="users")
    op.drop_index("idx_users_last_name_id", table_name="users")
    op.drop_index("idx_users_email_id", table_name="users")
    op.drop_index("idx_users_created_at_id", table_name="users")
    for column in reversed(_TRIGRAM_COLUMNS):
        op.drop_index(f"idx_users_{column}_trgm", table_name="users")
    # The extension stays: other objects may use it, and dropping it gains nothing.
