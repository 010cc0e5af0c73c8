"""What every command shares: settings (announced on stderr), the database, confirmations."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from gql_api.config import Environment, Settings, load_settings, redact_url
from gql_api.db import Database, migrations

T = TypeVar("T")


class CommandError(Exception):
    """A command failed for a reason the user can act on."""


def settings_for(args: argparse.Namespace, *, announce: bool = True, **overrides: Any) -> Settings:
    settings = load_settings(config_file=getattr(args, "config", None), **overrides)
    if announce:
        # A relative data_dir depends on the working directory: say which one this command uses.
        print(f"gql-api: {database_location(settings)}", file=sys.stderr, flush=True)
    return settings


def data_dir(settings: Settings) -> Path:
    return settings.database.data_dir.expanduser().resolve()


def database_location(settings: Settings) -> str:
    server = settings.database.server_url()
    if server is not None:
        return f"database {redact_url(server)} ({settings.env.value})"
    return f"data directory {data_dir(settings)} (embedded PostgreSQL, {settings.env.value})"


def confirm(args: argparse.Namespace, question: str) -> None:
    """Ask before destroying data: on a terminal interactively, otherwise only with --yes."""
    if getattr(args, "yes", False):
        return
    if not sys.stdin.isatty():
        raise CommandError(f"{question}: refused without a terminal to ask on; pass --yes")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in {"y", "yes"}:
        raise CommandError("cancelled")


def run_with_db(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    db = Database.from_settings(settings)

    async def run() -> T:
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


async def migrate_if_development(settings: Settings, db: Database) -> None:
    if settings.env != Environment.PRODUCTION:
        await migrations.upgrade(db.engine, "head")
