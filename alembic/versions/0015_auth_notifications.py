"""Notify every server process of changes to who may sign in, whoever makes them.

Servers remember a bearer's session check for a few seconds (gql_api/auth/session_cache.py).
These triggers send the id of the user concerned on the ``gql_api_auth`` channel whenever a
user row is updated or deleted, one of its sessions is updated or deleted (revocation, refresh,
expiry clean-up) or one of its second factors is added, changed or removed; ``*`` when one of
those tables is truncated. PostgreSQL delivers a notification when its transaction commits and
drops it on rollback, and sends one notification for the same payload within a transaction, so
revoking all of a user's sessions is one message. The writing transaction can read the same ids
in the setting ``gql_api.auth_changed`` before it commits.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHANNEL = "gql_api_auth"  # gql_api.auth.session_cache.CHANNEL
# The same ids, for the writing transaction itself (gql_api.db.commits reads it just before
# committing, so that its own process forgets only those users' checks): transaction-local,
# space-separated, ``*`` past about a hundred users.
CHANGED = "gql_api.auth_changed"  # gql_api.db.commits.CHANGED_SETTING
MAX_CHANGED_CHARS = 3700

# auth_changed(id or '*'): notify, and remember for the transaction.
CHANGED_FUNCTION = f"""
CREATE FUNCTION auth_changed(changed text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    seen text := coalesce(current_setting('{CHANGED}', true), '');
BEGIN
    PERFORM pg_notify('{CHANNEL}', changed);
    IF seen = '*' THEN
        RETURN;
    ELSIF changed = '*' OR length(seen) > {MAX_CHANGED_CHARS} THEN
        PERFORM set_config('{CHANGED}', '*', true);
    ELSIF position(changed IN seen) = 0 THEN
        PERFORM set_config('{CHANGED}', seen || changed || ' ', true);
    END IF;
END
$$"""

FUNCTIONS = {
    # users: the row's own id.
    "auth_user_changed": "PERFORM auth_changed(OLD.id::text);",
    # user_sessions, user_mfa_factors: the row's user.
    "auth_user_row_changed": (
        "IF TG_OP = 'INSERT' THEN\n"
        "    PERFORM auth_changed(NEW.user_id::text);\n"
        "ELSE\n"
        "    PERFORM auth_changed(OLD.user_id::text);\n"
        "END IF;"
    ),
    "auth_everything_changed": "PERFORM auth_changed('*');",
}

# (table, events of its row-level trigger, the function it runs)
TRIGGERS = (
    ("users", "UPDATE OR DELETE", "auth_user_changed"),
    ("user_sessions", "UPDATE OR DELETE", "auth_user_row_changed"),
    ("user_mfa_factors", "INSERT OR UPDATE OR DELETE", "auth_user_row_changed"),
)


def upgrade() -> None:
    op.execute(CHANGED_FUNCTION)
    for name, body in FUNCTIONS.items():
        op.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN\n{body}\nRETURN NULL;\nEND\n$$"
        )
    for table, events, function in TRIGGERS:
        op.execute(
            f"CREATE TRIGGER {table}_auth_notify AFTER {events} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {function}()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_auth_notify_truncate AFTER TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION auth_everything_changed()"
        )


def downgrade() -> None:
    for table, _, _ in TRIGGERS:
        op.execute(f"DROP TRIGGER {table}_auth_notify_truncate ON {table}")
        op.execute(f"DROP TRIGGER {table}_auth_notify ON {table}")
    for name in FUNCTIONS:
        op.execute(f"DROP FUNCTION {name}()")
    op.execute("DROP FUNCTION auth_changed(text)")
