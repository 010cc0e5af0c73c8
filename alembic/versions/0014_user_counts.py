"""User counts by role and status, kept exact by triggers.

A users page's ``totalCount`` counted the table every time: 0.9 ms of PostgreSQL per request
over 10,000 users, more than the rest of the page's statements together. ``user_counts`` holds
one row per (role, status); statement-level triggers on ``users`` add, subtract and move users
between rows in the writing transaction, so every snapshot sees counts that match the users it
sees. The count over all users, or over a role and/or a status, sums at most four rows
(``gql_api.repositories.user_listing``); any other filter still counts the table.

Writers of users of the same role and status queue on their count row until they commit (a
registration holds it for its transaction's last milliseconds); rows are locked in (role,
status) order, so two statements never wait for each other in a cycle.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The users a statement added and removed, netted per (role, status) and added to the counts
# in (role, status) order.
_APPLY = """
    INSERT INTO user_counts AS c (role, status, users)
    SELECT role, status, sum(n) FROM {changes}
    GROUP BY role, status HAVING sum(n) <> 0
    ORDER BY role, status
    ON CONFLICT (role, status) DO UPDATE SET users = c.users + EXCLUDED.users;
"""

FUNCTIONS = {
    "user_counts_inserted": _APPLY.format(
        changes="(SELECT role, status, 1 AS n FROM new_rows) AS changes"
    ),
    "user_counts_deleted": _APPLY.format(
        changes="(SELECT role, status, -1 AS n FROM old_rows) AS changes"
    ),
    # Per row, and only for a row whose role or status changed (the trigger's WHEN): a
    # statement-level trigger cannot name its columns and would run for every sign-in.
    "user_counts_updated": _APPLY.format(
        changes="(VALUES (OLD.role, OLD.status, -1), (NEW.role, NEW.status, 1))"
        " AS changes (role, status, n)"
    ),
    "user_counts_truncated": "DELETE FROM user_counts;",
}


def upgrade() -> None:
    op.create_table(
        "user_counts",
        sa.Column("role", sa.String(20), primary_key=True),
        sa.Column("status", sa.String(20), primary_key=True),
        sa.Column("users", sa.BigInteger(), nullable=False),
    )
    for name, body in FUNCTIONS.items():
        op.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN\n{body}\n    RETURN NULL;\nEND\n$$"
        )
    # The counts are taken while no user can be added: the triggers then keep them.
    op.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
    op.execute(
        "CREATE TRIGGER user_counts_insert AFTER INSERT ON users "
        "REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION user_counts_inserted()"
    )
    op.execute(
        "CREATE TRIGGER user_counts_delete AFTER DELETE ON users "
        "REFERENCING OLD TABLE AS old_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION user_counts_deleted()"
    )
    # Only a row whose role or status changed moves between counts (a sign-in's update of
    # last_login_at fires nothing).
    op.execute(
        "CREATE TRIGGER user_counts_update AFTER UPDATE OF role, status ON users "
        "FOR EACH ROW WHEN (OLD.role IS DISTINCT FROM NEW.role "
        "OR OLD.status IS DISTINCT FROM NEW.status) "
        "EXECUTE FUNCTION user_counts_updated()"
    )
    op.execute(
        "CREATE TRIGGER user_counts_truncate AFTER TRUNCATE ON users "
        "FOR EACH STATEMENT EXECUTE FUNCTION user_counts_truncated()"
    )
    op.execute(
        "INSERT INTO user_counts (role, status, users) "
        "SELECT role, status, count(*) FROM users GROUP BY role, status"
    )


def downgrade() -> None:
    for trigger in ("insert", "delete", "update", "truncate"):
        op.execute(f"DROP TRIGGER user_counts_{trigger} ON users")
    for name in FUNCTIONS:
        op.execute(f"DROP FUNCTION {name}()")
    op.drop_table("user_counts")
