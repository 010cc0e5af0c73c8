"""``gql-api migrate``, ``seed`` and ``db`` (backup, restore, shell, cleanup)."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
from pathlib import Path

from gql_api.cli.common import (
    CommandError,
    confirm,
    database_location,
    migrate_if_development,
    run_with_db,
    settings_for,
)
from gql_api.config import Settings
from gql_api.db import Database, libpq_url, migrations


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    if args.action == "down":
        confirm(
            args,
            f"revert the schema of {database_location(settings)} to "
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

    run_with_db(settings, work)
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    from gql_api.ops.seed import seed_defaults

    if args.test_users and settings.is_production:
        raise CommandError("--test-users is refused in production (accounts with known names)")

    async def work(db: Database) -> None:
        await migrate_if_development(settings, db)
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

    run_with_db(settings, work)
    return 0


def _server_url(settings: Settings) -> tuple[str, Database]:
    db = Database.from_settings(settings)
    return libpq_url(db.url), db


def cmd_db(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    if args.db_action == "cleanup":
        return _cleanup(settings)

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
            _restore(args, settings, url, server_major=major, empty=empty)
    except backup.BackupError as exc:
        raise CommandError(str(exc)) from None
    return 0


def _cleanup(settings: Settings) -> int:
    from gql_api.ops.maintenance import cleanup_expired

    async def work(db: Database) -> None:
        removed = await cleanup_expired(db, settings)
        for table, count in removed.items():
            print(f"{table}: removed {count}")

    run_with_db(settings, work)
    return 0


def _restore(
    args: argparse.Namespace, settings: Settings, url: str, *, server_major: int, empty: bool
) -> None:
    """Into an empty database; a non-empty one only with ``--force`` (and a confirmation)."""
    from gql_api.db import backup

    source = Path(args.file)
    if not source.is_file():
        raise CommandError(f"backup file not found: {source}")
    if not empty and not args.force:
        raise CommandError(
            "the target database is not empty: restore into an empty database, "
            "or pass --force to replace its contents"
        )
    if not empty:
        confirm(args, f"replace the contents of {database_location(settings)}")
    try:
        backup.restore(url, source, server_major=server_major)
    except backup.BackupError as exc:
        if empty or backup.is_custom_format(source):
            raise
        raise CommandError(
            f"{exc} (a plain SQL dump replaces existing objects only when made with "
            "pg_dump --clean; or restore it into an empty database)"
        ) from None
    print(f"restored {source}")
