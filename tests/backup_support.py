"""Helpers for the ``gql-api db backup`` / ``db restore`` tests: run the CLI, fill and read a
database."""

from __future__ import annotations

import asyncio

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


async def run_cli(monkeypatch: pytest.MonkeyPatch, url: str, *argv: str) -> int:
    """Run ``gql-api ARGV`` against ``url`` (in a thread: the CLI runs its own event loop)."""
    monkeypatch.setenv("USER_SERVICE_DATABASE_URL", url)
    for name in ("USER_SERVICE_ENV", "USER_SERVICE_CONFIG", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return await asyncio.to_thread(cli.main, list(argv))


async def fill(url: str) -> None:
    """25 users with a row in every table that refers to them."""
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


async def contents(url: str) -> dict[str, list[str]]:
    """Every row of every table, as sorted text."""
    conn = await asyncpg.connect(url)
    try:
        return {
            table: sorted(r[0] for r in await conn.fetch(f"SELECT t::text FROM {table} AS t"))
            for table in TABLES
        }
    finally:
        await conn.close()
