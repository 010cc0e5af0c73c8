"""``gql-api``: serve, migrate, seed, db (backup | restore | shell | cleanup), export-schema.

Every command that needs a database uses the configured one or, with none configured, the same
embedded data directory as ``serve`` (starting the server when needed), and says which on one
line of stderr. Failures exit non-zero with one clear line on stderr. Destructive commands
(``migrate down``, ``db restore --force``) ask on a terminal and need ``--yes`` otherwise.
"""

from __future__ import annotations

import argparse
import sys

from gql_api import __version__
from gql_api.cli.common import CommandError
from gql_api.cli.database import cmd_db, cmd_migrate, cmd_seed
from gql_api.cli.documents import cmd_documents, cmd_export_schema
from gql_api.cli.serve import cmd_serve
from gql_api.config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gql-api", description="The gql_api user service.")
    parser.add_argument("--version", action="version", version=f"gql_api {__version__}")
    parser.add_argument("--config", help="YAML settings file (default: by USER_SERVICE_ENV)")
    commands = parser.add_subparsers(dest="command", required=True)
    # In the order `gql-api --help` lists them.
    for add in (_add_serve, _add_migrate, _add_seed, _add_db, _add_documents, _add_export):
        add(commands)
    return parser


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="migrate, then serve GraphQL")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument("--reload", action="store_true", help="restart on code changes (dev)")
    serve.add_argument("--no-migrate", action="store_true", help="do not apply migrations")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log-format", choices=["auto", "json", "text"])
    serve.add_argument(
        "--cleanup-interval", help="how often to remove expired rows, e.g. 10m; 0 turns it off"
    )
    serve.set_defaults(handler=cmd_serve)


def _add_migrate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate = commands.add_parser("migrate", help="apply or revert migrations")
    migrate.add_argument("action", choices=["up", "down", "status", "history"])
    migrate.add_argument("revision", nargs="?", help="target revision (up: head, down: -1)")
    migrate.add_argument("--yes", action="store_true", help="do not ask before `down`")
    migrate.set_defaults(handler=cmd_migrate)


def _add_seed(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    seed = commands.add_parser("seed", help="create the admin (and test users) (idempotent)")
    seed.add_argument(
        "--test-users",
        action="store_true",
        help="also user1@test.com and user2@test.com (not in production)",
    )
    seed.add_argument("--admin-email", default="admin@api-server.com")
    seed.add_argument("--admin-password", help="default: USER_SERVICE_ADMIN_PASSWORD or generated")
    seed.add_argument("--users", type=int, default=0, help="also bulk-load N users")
    seed.set_defaults(handler=cmd_seed)


def _add_db(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = commands.add_parser("db", help="backup, restore, shell, cleanup")
    db_actions = db.add_subparsers(dest="db_action", required=True)
    backup = db_actions.add_parser("backup", help="custom-format dump")
    backup.add_argument("file", nargs="?")
    restore = db_actions.add_parser("restore", help="restore a dump into an empty database")
    restore.add_argument("file")
    restore.add_argument("--force", action="store_true", help="replace a non-empty database")
    restore.add_argument("--yes", action="store_true", help="do not ask before replacing")
    db_actions.add_parser("shell", help="psql on the database")
    db_actions.add_parser(
        "cleanup", help="remove expired sessions, tokens, attempts and idle persisted queries"
    )
    db.set_defaults(handler=cmd_db)


def _add_documents(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    documents = commands.add_parser("documents", help="trusted documents (persisted operations)")
    documents_actions = documents.add_subparsers(dest="documents_action", required=True)
    register = documents_actions.add_parser("register", help="register *.graphql files")
    register.add_argument("folder")
    documents.set_defaults(handler=cmd_documents)


def _add_export(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = commands.add_parser("export-schema", help="write the GraphQL SDL")
    export.add_argument("--output", default="schema.graphql")
    export.add_argument("--check", action="store_true", help="fail when the file is stale")
    export.set_defaults(handler=cmd_export_schema)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except (ConfigError, CommandError) as exc:
        print(f"gql-api: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a clear line, not a traceback, for anything we did not expect
        print(f"gql-api: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
