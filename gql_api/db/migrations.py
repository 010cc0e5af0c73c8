"""Alembic, driven from Python: upgrade, downgrade, current revision and head.

The CLI, the server's start-up and the tests all go through here, on a connection of the
service's own engine, so alembic sees exactly the database the service uses.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from alembic import command

log = logging.getLogger(__name__)

# An advisory lock key so that two processes never migrate one database at once.
_MIGRATION_LOCK_KEY = 0x67716C5F617069  # "gql_api"


def _repo_root() -> Path:
    override = os.environ.get("USER_SERVICE_ALEMBIC_DIR")
    if override:
        return Path(override).resolve().parent
    here = Path(__file__).resolve().parents[2]  # gql_api/db/migrations.py -> the checkout
    if (here / "alembic" / "env.py").is_file():
        return here
    return Path.cwd()


def alembic_config() -> Config:
    root = _repo_root()
    cfg = Config(str(root / "alembic.ini")) if (root / "alembic.ini").is_file() else Config()
    cfg.set_main_option("script_location", str(root / "alembic"))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _run(connection: Connection, action: str, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    before = _current(connection)
    if action == "upgrade":
        command.upgrade(cfg, revision)
    else:
        command.downgrade(cfg, revision)
    after = _current(connection)
    if after != before:
        # One line instead of alembic's per-revision INFO lines (configure_logging quiets them).
        log.info("database schema migrated from %s to %s", before or "<base>", after or "<base>")


async def _migrate(engine: AsyncEngine, action: str, revision: str) -> None:
    """Run alembic under a session-level advisory lock, released only after the commit, so a
    second migrator waits and then finds the schema already in place."""
    lock = text("SELECT pg_advisory_lock(:key)")
    unlock = text("SELECT pg_advisory_unlock(:key)")
    async with engine.connect() as conn:
        await conn.execute(lock, {"key": _MIGRATION_LOCK_KEY})
        await conn.commit()
        try:
            await conn.run_sync(_run, action, revision)
            await conn.commit()
        finally:
            await conn.rollback()
            await conn.execute(unlock, {"key": _MIGRATION_LOCK_KEY})
            await conn.commit()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    await _migrate(engine, "upgrade", revision)


async def downgrade(engine: AsyncEngine, revision: str = "-1") -> None:
    await _migrate(engine, "downgrade", revision)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


def history() -> list[dict[str, Any]]:
    script = ScriptDirectory.from_config(alembic_config())
    return [
        {"revision": rev.revision, "down_revision": rev.down_revision, "message": rev.doc}
        for rev in script.walk_revisions()
    ]
