"""``gql-api``: serve, migrate, seed, db (backup | restore | shell | cleanup), export-schema.

Every command that needs a database uses the configured one or, with none configured, the same
embedded data directory as ``serve`` (starting the server when needed), and says which on one
line of stderr. Failures exit non-zero with one clear line on stderr. Destructive commands
(``migrate down``, ``db restore --force``) ask on a terminal and need ``--yes`` otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from gql_api import __version__
from gql_api.config import ConfigError, Environment, Settings, load_settings, redact_url
from gql_api.db import Database, libpq_url, migrations

if TYPE_CHECKING:
    from gql_api.ops.seed import SeededAccount

T = TypeVar("T")


class CommandError(Exception):
    """A command failed for a reason the user can act on."""


def _settings(args: argparse.Namespace, *, announce: bool = True, **overrides: Any) -> Settings:
    settings = load_settings(config_file=getattr(args, "config", None), **overrides)
    if announce:
        # A relative data_dir depends on the working directory: say which one this command uses.
        print(f"gql-api: {_database_location(settings)}", file=sys.stderr, flush=True)
    return settings


def _data_dir(settings: Settings) -> Path:
    return settings.database.data_dir.expanduser().resolve()


def _database_location(settings: Settings) -> str:
    server = settings.database.server_url()
    if server is not None:
        return f"database {redact_url(server)} ({settings.env.value})"
    return f"data directory {_data_dir(settings)} (embedded PostgreSQL, {settings.env.value})"


def _confirm(args: argparse.Namespace, question: str) -> None:
    """Ask before destroying data: on a terminal interactively, otherwise only with --yes."""
    if getattr(args, "yes", False):
        return
    if not sys.stdin.isatty():
        raise CommandError(f"{question}: refused without a terminal to ask on; pass --yes")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in {"y", "yes"}:
        raise CommandError("cancelled")


def _run_with_db(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    db = Database.from_settings(settings)

    async def run() -> T:
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


async def _migrate_if_development(settings: Settings, db: Database) -> None:
    if settings.env != Environment.PRODUCTION:
        await migrations.upgrade(db.engine, "head")


# --- serve -------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    overrides: dict[str, Any] = {}
    server: dict[str, Any] = {}
    if args.host is not None:
        server["host"] = args.host
    if args.port is not None:
        server["port"] = args.port
    if args.workers is not None:
        server["workers"] = args.workers
    if server:
        overrides["server"] = server
    logging_options = {
        key: value
        for key, value in (("level", args.log_level), ("format", args.log_format))
        if value is not None
    }
    if logging_options:
        overrides["logging"] = logging_options
    if args.cleanup_interval is not None:
        overrides["database"] = {"cleanup_interval": args.cleanup_interval}
    settings = _settings(args, **overrides)
    # Workers build their settings from the environment: hand them the command line's too.
    for section, values in overrides.items():
        for key, value in values.items():
            os.environ[f"USER_SERVICE_{section}_{key}".upper()] = str(value)
    if settings.server.workers > 1 or settings.server.metrics_port is not None:
        # Before anything imports prometheus_client. The metrics listener reads these files
        # too: it runs beside the workers (or the one in-process app), not inside them.
        _prepare_multiprocess_metrics()
    from gql_api.logs import configure_logging

    configure_logging(settings)

    db = Database.from_settings(settings)

    from gql_api.ops.seed import DEFAULT_ADMIN_EMAIL, count_users, seed_defaults

    async def prepare() -> SeededAccount | None:
        """Migrate and, on an empty database, create the first admin (returned with its
        one-time password)."""
        try:
            if not args.no_migrate:
                await migrations.upgrade(db.engine, "head")

            if await count_users(db) == 0:
                accounts = await seed_defaults(
                    db,
                    admin_password=os.environ.get("USER_SERVICE_ADMIN_PASSWORD"),
                    admin_email=os.environ.get("USER_SERVICE_ADMIN_EMAIL", DEFAULT_ADMIN_EMAIL),
                    rounds=settings.auth.bcrypt_rounds,
                    with_test_users=False,
                )
                return next((a for a in accounts if a.password), None)
            return None
        finally:
            await db.dispose()

    first_admin = asyncio.run(prepare())

    # Workers (and the single in-process server) find the database through the environment, so
    # they all use the server this process started or found.
    os.environ["USER_SERVICE_DATABASE_URL"] = db.url
    if args.config:
        os.environ["USER_SERVICE_CONFIG"] = str(Path(args.config).resolve())
    from gql_api.app import create_app, secret_file_for
    from gql_api.config import ensure_jwt_secret

    ensure_jwt_secret(settings, secret_file_for(settings))
    print(_banner(settings, db, first_admin), flush=True)
    grace = int(settings.server.shutdown_grace_period.total_seconds())
    # uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal with the
    # handlers that were in place before it started. Ours turns that into a normal exit, so the
    # embedded PostgreSQL is stopped cleanly below instead of the process dying on the spot.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_after_shutdown)
    listener = None
    try:
        if settings.server.metrics_port is not None:
            from gql_api.metrics_exposure import ListenerError, MetricsListener

            listener = MetricsListener(settings, db.url)
            try:
                listener.start()
            except ListenerError as exc:
                raise CommandError(str(exc)) from None
            print(f"metrics at http://{listener.address}/metrics", flush=True)
        if settings.server.workers > 1 or args.reload:
            uvicorn.run(
                "gql_api.app:app_factory",
                factory=True,
                host=settings.server.host,
                port=settings.server.port,
                workers=settings.server.workers,
                reload=args.reload,
                timeout_graceful_shutdown=grace,
                log_level=settings.logging.level,
                log_config=None,
                access_log=False,
                proxy_headers=False,
            )
        else:
            app = create_app(_settings(args, announce=False))
            uvicorn.run(
                app,
                host=settings.server.host,
                port=settings.server.port,
                timeout_graceful_shutdown=grace,
                log_level=settings.logging.level,
                log_config=None,
                access_log=False,
                proxy_headers=False,
            )
    finally:
        if listener is not None:
            listener.stop()
        db.stop_embedded()
    return 0


def _banner(settings: Settings, db: Database, first_admin: SeededAccount | None) -> str:
    """What a person needs from a start: where the data lives, the URL, and (on the first start
    only) the admin's one-time password, boxed so that it is not lost in the log lines."""
    where = f"http://{settings.server.host}:{settings.server.port}/graphql"
    if settings.database.embedded:
        from gql_api.db.embedded import setup_log_path

        data = f"{_data_dir(settings)} (embedded PostgreSQL; its set-up log: "
        data += f"{setup_log_path(settings.database.data_dir)})"
    else:
        data = db.describe()
    lines = [f"gql_api {__version__} ({settings.env.value})", f"  data:    {data}"]
    lines.append(f"  GraphQL: {where}")
    if first_admin is not None:
        inner = [
            "First admin created; the password is shown only once:",
            f"  e-mail:   {first_admin.email}",
            f"  password: {first_admin.password}",
            "Sign in with the login mutation, then change the password.",
        ]
        width = max(len(line) for line in inner)
        lines.append("+" + "-" * (width + 2) + "+")
        lines.extend(f"| {line.ljust(width)} |" for line in inner)
        lines.append("+" + "-" * (width + 2) + "+")
    return "\n".join(lines)


def _exit_after_shutdown(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _prepare_multiprocess_metrics() -> None:
    """Point prometheus-client's multi-process mode at an empty directory before the workers
    start (they inherit the variable), so /metrics sums every worker and no stale file of an
    earlier run counts."""
    import tempfile

    existing = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if existing:
        directory = Path(existing)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    else:
        directory = Path(tempfile.mkdtemp(prefix="gql_api-metrics-"))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
        atexit.register(shutil.rmtree, directory, ignore_errors=True)


# --- migrate -----------------------------------------------------------------------------------


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.action == "down":
        _confirm(
            args,
            f"revert the schema of {_database_location(settings)} to "
            f"{args.revision or 'the previous revision'} (a running service answers "
            "SERVICE_UNAVAILABLE until it is migrated up again, and dropped data is lost)",
        )
    if args.action == "history":
        for rev in migrations.history():
            print(f"{rev['down_revision'] or '<base>'} -> {rev['revision']}: {rev['message']}")
        return 0

    async def work(db: Database) -> None:
        if args.action == "up":
            await migrations.upgrade(db.engine, args.revision or "head")
        elif args.action == "down":
            await migrations.downgrade(db.engine, args.revision or "-1")
        current = await migrations.current_revision(db.engine)
        head = migrations.head_revision()
        state = "at head" if current == head else f"head is {head}"
        print(f"current revision: {current or '<base>'} ({state})")

    _run_with_db(settings, work)
    return 0


# --- seed --------------------------------------------------------------------------------------


def cmd_seed(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from gql_api.ops.seed import seed_defaults

    if args.test_users and settings.is_production:
        raise CommandError("--test-users is refused in production (accounts with known names)")

    async def work(db: Database) -> None:
        await _migrate_if_development(settings, db)
        accounts = await seed_defaults(
            db,
            admin_email=args.admin_email,
            admin_password=args.admin_password or os.environ.get("USER_SERVICE_ADMIN_PASSWORD"),
            rounds=settings.auth.bcrypt_rounds,
            with_test_users=args.test_users,
        )
        for account in accounts:
            if account.password is None:
                print(f"exists:  {account.email} ({account.role})")
            else:
                print(f"created: {account.email} ({account.role}) password: {account.password}")
        if args.users:
            from gql_api.ops.bulk_seed import bulk_seed_users

            created = await bulk_seed_users(db, args.users, rounds=settings.auth.bcrypt_rounds)
            print(f"bulk-loaded {created} users with profiles and sessions")

    _run_with_db(settings, work)
    return 0


# --- db ----------------------------------------------------------------------------------------


def _server_url(settings: Settings) -> tuple[str, Database]:
    db = Database.from_settings(settings)
    return libpq_url(db.url), db


def cmd_db(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.db_action == "cleanup":
        from gql_api.ops.maintenance import cleanup_expired

        async def work(db: Database) -> None:
            removed = await cleanup_expired(db, settings)
            for table, count in removed.items():
                print(f"{table}: removed {count}")

        _run_with_db(settings, work)
        return 0

    from gql_api.db import backup

    url, db = _server_url(settings)

    async def inspect() -> tuple[int, bool]:
        # One event loop for every query, and the pool closed in it, before the tools run.
        try:
            return await backup.server_major(db.engine), await backup.is_empty(db.engine)
        finally:
            await db.dispose()

    if args.db_action == "shell":
        asyncio.run(db.dispose())
        try:
            psql = backup.find_tool("psql")
        except backup.BackupError as exc:
            raise CommandError(str(exc)) from None
        return subprocess.call([psql, url])
    major, empty = asyncio.run(inspect())
    try:
        if args.db_action == "backup":
            target = Path(args.file or backup.default_backup_name())
            backup.dump(url, target, server_major=major)
            print(f"backup written to {target}")
        elif args.db_action == "restore":
            source = Path(args.file)
            if not source.is_file():
                raise CommandError(f"backup file not found: {source}")
            if not empty and not args.force:
                raise CommandError(
                    "the target database is not empty: restore into an empty database, "
                    "or pass --force to replace its contents"
                )
            if not empty:
                _confirm(args, f"replace the contents of {_database_location(settings)}")
            try:
                backup.restore(url, source, server_major=major)
            except backup.BackupError as exc:
                if empty or backup.is_custom_format(source):
                    raise
                raise CommandError(
                    f"{exc} (a plain SQL dump replaces existing objects only when made with "
                    "pg_dump --clean; or restore it into an empty database)"
                ) from None
            print(f"restored {source}")
    except backup.BackupError as exc:
        raise CommandError(str(exc)) from None
    return 0


# --- export-schema -----------------------------------------------------------------------------


def cmd_export_schema(args: argparse.Namespace) -> int:
    from gql_api.graphql.schema import export_sdl

    sdl = export_sdl()
    target = Path(args.output)
    if args.check:
        if not target.is_file() or target.read_text(encoding="utf-8") != sdl:
            raise CommandError(f"{target} is out of date: run `gql-api export-schema`")
        print(f"{target} is up to date")
        return 0
    target.write_text(sdl, encoding="utf-8")
    print(f"schema written to {target}")
    return 0


# --- documents ---------------------------------------------------------------------------------


def cmd_documents(args: argparse.Namespace) -> int:
    """Register every ``*.graphql`` file below a folder as a trusted document."""
    from gql_api.graphql.persisted import sha256_hex
    from gql_api.repositories import persisted_queries

    folder = Path(args.folder)
    files = sorted(folder.rglob("*.graphql")) if folder.is_dir() else []
    if not files:
        raise CommandError(f"no .graphql files found in {folder}")
    documents = [(path, path.read_text(encoding="utf-8")) for path in files]
    settings = _settings(args)

    async def work(db: Database) -> None:
        await _migrate_if_development(settings, db)
        async with db.transaction() as session:
            for _path, query in documents:
                await persisted_queries.save(
                    session, sha256=sha256_hex(query), query=query, trusted=True
                )
        for path, query in documents:
            print(f"{sha256_hex(query)}  {path}")

    _run_with_db(settings, work)
    return 0


# --- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gql-api", description="The gql_api user service.")
    parser.add_argument("--version", action="version", version=f"gql_api {__version__}")
    parser.add_argument("--config", help="YAML settings file (default: by USER_SERVICE_ENV)")
    commands = parser.add_subparsers(dest="command", required=True)

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

    migrate = commands.add_parser("migrate", help="apply or revert migrations")
    migrate.add_argument("action", choices=["up", "down", "status", "history"])
    migrate.add_argument("revision", nargs="?", help="target revision (up: head, down: -1)")
    migrate.add_argument("--yes", action="store_true", help="do not ask before `down`")
    migrate.set_defaults(handler=cmd_migrate)

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

    documents = commands.add_parser("documents", help="trusted documents (persisted operations)")
    documents_actions = documents.add_subparsers(dest="documents_action", required=True)
    register = documents_actions.add_parser("register", help="register *.graphql files")
    register.add_argument("folder")
    documents.set_defaults(handler=cmd_documents)

    export = commands.add_parser("export-schema", help="write the GraphQL SDL")
    export.add_argument("--output", default="schema.graphql")
    export.add_argument("--check", action="store_true", help="fail when the file is stale")
    export.set_defaults(handler=cmd_export_schema)
    return parser


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


if __name__ == "__main__":
    sys.exit(main())
