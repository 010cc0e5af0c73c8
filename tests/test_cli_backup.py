"""``gql-api db backup`` / ``db restore`` through the CLI entry point, on a real server."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from tests.backup_support import TABLES, contents, fill, run_cli


async def test_backup_restore_round_trip_keeps_every_row(
    fresh_database: Callable[[], Awaitable[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    source = await fresh_database()
    assert await run_cli(monkeypatch, source, "migrate", "up") == 0
    await fill(source)
    before = await contents(source)
    assert all(before[t] for t in TABLES)
    assert len(before["users"]) == 25

    dump = tmp_path / "round-trip.dump"
    assert await run_cli(monkeypatch, source, "db", "backup", str(dump)) == 0
    assert dump.read_bytes()[:5] == b"PGDMP"  # the custom format

    target = await fresh_database()
    assert await run_cli(monkeypatch, target, "db", "restore", str(dump)) == 0, capsys.readouterr()
    assert await contents(target) == before

    # Restoring again into what is now a non-empty database is refused without --force ...
    capsys.readouterr()
    assert await run_cli(monkeypatch, target, "db", "restore", str(dump)) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "--force" in err
    # ... and replaces its contents with it.
    conn = await asyncpg.connect(target)
    try:
        await conn.execute("DELETE FROM login_attempts")
    finally:
        await conn.close()
    assert await run_cli(monkeypatch, target, "db", "restore", "--force", "--yes", str(dump)) == 0
    assert await contents(target) == before


async def test_backup_has_a_timestamped_default_name(
    fresh_database: Callable[[], Awaitable[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    url = await fresh_database()
    monkeypatch.chdir(tmp_path)
    assert await run_cli(monkeypatch, url, "db", "backup") == 0
    dumps = list(tmp_path.glob("*.dump"))
    assert len(dumps) == 1
    assert re.fullmatch(r"gql_api-\d{8}T\d{6}Z\.dump", dumps[0].name)
    assert dumps[0].name in capsys.readouterr().out


async def test_restore_of_a_missing_file_is_a_clear_error(
    fresh_database: Callable[[], Awaitable[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    url = await fresh_database()
    assert await run_cli(monkeypatch, url, "db", "restore", str(tmp_path / "nope.dump")) == 2
    assert "backup file not found" in capsys.readouterr().err
