"""``gql-api db backup`` / ``db restore`` through the CLI entry point, on a real server."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from gql_api import cli

TABLES = (
    "users",
    "user_profiles",
    "user_sessions",
    "one_time_tokens",
    "login_attempts",
    "audit_logs",
    "alembic_version",
)


async def _cli(monkeypatch: pytest.MonkeyPatch, url: str, *argv: str) -> int:
    """Run ``gql-api ARGV`` against ``url`` (in a thread: the CLI runs its own event loop)."""
    monkeypatch.setenv("USER_SERVICE_DATABASE_URL", url)
    for name in ("USER_SERVICE_ENV", "USER_SERVICE_CONFIG", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return await asyncio.to_thread(cli.main, list(argv))


async def _fill(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """
            INSERT INTO users (email, password_hash, first_name, last_name, role)
            SELECT 'u' || n || '@example.com', 'hash-' || n, 'First' || n, 'Lást ' || n,
                   CASE WHEN n = 1 THEN 'admin' ELSE 'user' END
            FROM generate_series(1, 25) AS n;
            INSERT INTO user_profiles (user_id, bio, preferences)
            SELECT id, 'bio of ' || email, jsonb_build_object('theme', 'dark', 'n', length(email))
            FROM users;
            INSERT INTO user_sessions (user_id, token_hash, expires_at, ip_address, device_info)
            SELECT id, md5(email), now() + interval '1 day', '10.0.0.1', '{"os": "linux"}'
            FROM users;
            INSERT INTO one_time_tokens (user_id, purpose, token_hash, expires_at)
            SELECT id, 'verify_email', md5('t' || email), now() + interval '1 hour' FROM users;
            INSERT INTO login_attempts (kind, email, ip_address, succeeded)
            SELECT 'login', email, '10.0.0.2', false FROM users;
            INSERT INTO audit_logs (actor_id, action, target_type, target_id, changes)
            SELECT id, 'user.created', 'user', id, '{"x": 1}' FROM users;
            """
        )
    finally:
        await conn.close()


async def _contents(url: str) -> dict[str, list[str]]:
    """Every row of every table, as sorted text."""
    conn = await asyncpg.connect(url)
    try:
        return {
            table: sorted(r[0] for r in await conn.fetch(f"SELECT t::text FROM {table} AS t"))
            for table in TABLES
        }
    finally:
        await conn.close()


async def test_backup_restore_round_trip_keeps_every_row(
    fresh_database: Callable[[], Awaitable[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    source = await fresh_database()
    assert await _cli(monkeypatch, source, "migrate", "up") == 0
    await _fill(source)
    before = await _contents(source)
    assert all(before[t] for t in TABLES)
    assert len(before["users"]) == 25

    dump = tmp_path / "round-trip.dump"
    assert await _cli(monkeypatch, source, "db", "backup", str(dump)) == 0
    assert dump.read_bytes()[:5] == b"PGDMP"  # the custom format

    target = await fresh_database()
    assert await _cli(monkeypatch, target, "db", "restore", str(dump)) == 0, capsys.readouterr()
    assert await _contents(target) == before

    # Restoring again into what is now a non-empty database is refused without --force ...
    capsys.readouterr()
    assert await _cli(monkeypatch, target, "db", "restore", str(dump)) == 2
    err = capsys.readouterr().err
    assert "not empty" in err and "--force" in err
    # ... and replaces its contents with it.
    conn = await asyncpg.connect(target)
    try:
        await conn.execute("DELETE FROM login_attempts")
    finally:
        await conn.close()
    assert await _cli(monkeypatch, target, "db", "restore", "--force", str(dump)) == 0
    assert await _contents(target) == before


async def test_backup_has_a_timestamped_default_name(
    fresh_database: Callable[[], Awaitable[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    url = await fresh_database()
    monkeypatch.chdir(tmp_path)
    assert await _cli(monkeypatch, url, "db", "backup") == 0
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
    assert await _cli(monkeypatch, url, "db", "restore", str(tmp_path / "nope.dump")) == 2
    assert "backup file not found" in capsys.readouterr().err
