"""The guide's schema: ``users.email`` as CITEXT with a plain UNIQUE constraint (so the guide's
``INSERT ... ON CONFLICT (email) DO NOTHING`` works and 'Ann@X.com' still conflicts with
'ann@x.com'), and ``user_sessions.updated_at`` kept by the ``updated_at`` trigger function.

The trigram search index on email moves to ``email::text`` (pg_trgm's operator class is for
text); searches cast the same way so that the index serves them.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # citext ships with PostgreSQL (contrib), like pg_trgm.
    op.execute("CREATE EXTENSION IF NOT EXISTS citext")
    op.drop_index("idx_users_email_trgm", table_name="users")
    op.execute("ALTER TABLE users ALTER COLUMN email TYPE citext")
    op.drop_index("idx_users_email_lower", table_name="users")
    op.create_unique_constraint("users_email_key", "users", ["email"])
    op.execute("CREATE INDEX idx_users_email_trgm ON users USING gin ((email::text) gin_trgm_ops)")

    op.add_column(
        "user_sessions",
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.func.now(),
        ),
    )
    op.execute(
        "CREATE TRIGGER update_user_sessions_updated_at BEFORE UPDATE ON user_sessions "
        "FOR EACH ROW EXECUTE FUNCTION update_updated_at_column()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS update_user_sessions_updated_at ON user_sessions")
    op.drop_column("user_sessions", "updated_at")

    op.drop_index("idx_users_email_trgm", table_name="users")
    op.drop_constraint("users_email_key", "users", type_="unique")
    op.execute("ALTER TABLE users ALTER COLUMN email TYPE varchar(255)")
    op.create_index("idx_users_email_lower", "users", [sa.text("lower(email)")], unique=True)
    op.create_index(
        "idx_users_email_trgm",
        "users",
        ["email"],
        postgresql_using="gin",
        postgresql_ops={"email": "gin_trgm_ops"},
    )
    # The extension stays: other objects may use it, and dropping it gains nothing.
