"""``gql-api serve``: migrate, create the first admin on an empty database, then run uvicorn
(one process, or workers that find the database through the environment)."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import shutil
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gql_api import __version__
from gql_api.cli.common import CommandError, data_dir, settings_for
from gql_api.config import Settings
from gql_api.db import Database, migrations

if TYPE_CHECKING:
    from gql_api.ops.seed import SeededAccount


def cmd_serve(args: argparse.Namespace) -> int:
    overrides = _command_line_settings(args)
    settings = settings_for(args, **overrides)
    # Workers build their settings from the environment: hand them the command line's too.
    for section, values in overrides.items():
        for key, value in values.items():
            os.environ[f"USER_SERVICE_{section}_{key}".upper()] = str(value)
    if settings.server.workers > 1 or settings.server.metrics_port is not None:
        # Before anything imports prometheus_client. The metrics listener reads these files
        # too: it runs beside the workers (or the one in-process app), not inside them.
        _prepare_multiprocess_metrics()
    from gql_api.observability.logs import configure_logging

    configure_logging(settings)
    db = Database.from_settings(settings)
    first_admin = asyncio.run(_prepare_database(db, settings, migrate=not args.no_migrate))
    # Workers (and the single in-process server) find the database through the environment, so
    # they all use the server this process started or found.
    os.environ["USER_SERVICE_DATABASE_URL"] = db.url
    if args.config:
        os.environ["USER_SERVICE_CONFIG"] = str(Path(args.config).resolve())
    from gql_api.config import ensure_jwt_secret
    from gql_api.web.app import secret_file_for

    ensure_jwt_secret(settings, secret_file_for(settings))
    print(_banner(settings, db, first_admin), flush=True)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal with the
    # handlers that were in place before it started. Ours turns that into a normal exit, so the
    # embedded PostgreSQL is stopped cleanly below instead of the process dying on the spot.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_after_shutdown)
    listener = None
    try:
        listener = _start_metrics_listener(settings, db)
        _run_uvicorn(args, settings)
    finally:
        if listener is not None:
            listener.stop()
        db.stop_embedded()
    return 0


def _command_line_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the command line overrides, by section."""
    overrides: dict[str, dict[str, Any]] = {}
    server = {
        key: value
        for key, value in (("host", args.host), ("port", args.port), ("workers", args.workers))
        if value is not None
    }
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
    return overrides


async def _prepare_database(
    db: Database, settings: Settings, *, migrate: bool
) -> SeededAccount | None:
    """Migrate and, on an empty database, create the first admin (returned with its one-time
    password)."""
    from gql_api.ops.seed import DEFAULT_ADMIN_EMAIL, count_users, seed_defaults

    try:
        if migrate:
            await migrations.upgrade(db.engine, "head")
        if await count_users(db) != 0:
            return None
        accounts = await seed_defaults(
            db,
            admin_password=os.environ.get("USER_SERVICE_ADMIN_PASSWORD"),
            admin_email=os.environ.get("USER_SERVICE_ADMIN_EMAIL", DEFAULT_ADMIN_EMAIL),
            rounds=settings.auth.bcrypt_rounds,
            with_test_users=False,
        )
        return next((a for a in accounts if a.password), None)
    finally:
        await db.dispose()


def _start_metrics_listener(settings: Settings, db: Database) -> Any:
    """/metrics on its own port (server.metrics_port), beside the workers; None when unset."""
    if settings.server.metrics_port is None:
        return None
    from gql_api.observability.metrics_exposure import ListenerError, MetricsListener

    listener = MetricsListener(settings, db.url)
    try:
        listener.start()
    except ListenerError as exc:
        raise CommandError(str(exc)) from None
    print(f"metrics at http://{listener.address}/metrics", flush=True)
    return listener


def _run_uvicorn(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    from gql_api.web.http_protocol import PROTOCOL

    options: dict[str, Any] = {
        "host": settings.server.host,
        "port": settings.server.port,
        "timeout_graceful_shutdown": int(settings.server.shutdown_grace_period.total_seconds()),
        "log_level": settings.logging.level,
        "log_config": None,
        "access_log": False,
        "proxy_headers": False,
        "http": PROTOCOL,  # a response in one write (gql_api.web.http_protocol)
    }
    if settings.server.workers > 1 or args.reload:
        # Each worker builds its app from the environment set above.
        uvicorn.run(
            "gql_api.web.app:app_factory",
            factory=True,
            workers=settings.server.workers,
            reload=args.reload,
            **options,
        )
    else:
        from gql_api.web.app import create_app

        uvicorn.run(create_app(settings_for(args, announce=False)), **options)


def _banner(settings: Settings, db: Database, first_admin: SeededAccount | None) -> str:
    """What a person needs from a start: where the data lives, the URL, and (on the first start
    only) the admin's one-time password, boxed so that it is not lost in the log lines."""
    where = f"http://{settings.server.host}:{settings.server.port}/graphql"
    if settings.database.embedded:
        from gql_api.db.embedded import setup_log_path

        data = f"{data_dir(settings)} (embedded PostgreSQL; its set-up log: "
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
