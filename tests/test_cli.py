"""The ``gql-api`` command: seed, migrate, export-schema, errors, and ``serve`` on an empty
embedded data directory (a real uvicorn process on a loopback port)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gql_api.cli import main
from gql_api.db import Database
from tests.conftest import make_settings
from tests.server_support import embedded_env, free_port


@pytest.fixture
def scratch_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    async def use(url: str) -> None:
        monkeypatch.setenv("USER_SERVICE_DATABASE_URL", url)
        monkeypatch.setenv("USER_SERVICE_AUTH_BCRYPTROUNDS", "4")
        monkeypatch.delenv("DATABASE_URL", raising=False)
        monkeypatch.delenv("USER_SERVICE_ENV", raising=False)

    return use


async def test_seed_is_idempotent(
    fresh_database: Any, scratch_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await fresh_database()
    await scratch_env(url)
    seed = ["seed", "--test-users"]
    assert await _cli([*seed, "--admin-password", "an admin password 123"]) == 0
    first = capsys.readouterr().out
    assert "created: admin@api-server.com (admin)" in first
    assert first.count("created:") == 3
    assert await _cli(seed) == 0
    second = capsys.readouterr().out
    assert second.count("exists:") == 3 and "created" not in second

    database = Database(make_settings(url).database, url, None)
    async with database.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT email, role FROM users ORDER BY email"))).all()
        profiles = (await conn.execute(text("SELECT count(*) FROM user_profiles"))).scalar_one()
    await database.dispose()
    assert [tuple(r) for r in rows] == [
        ("admin@api-server.com", "admin"),
        ("user1@test.com", "user"),
        ("user2@test.com", "user"),
    ]
    assert profiles == 3


async def test_generated_admin_password_is_printed_once_and_not_fixed(
    fresh_database: Any, scratch_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    passwords = []
    for _ in range(2):
        await scratch_env(await fresh_database())
        assert await _cli(["seed", "--admin-email", "root@example.com"]) == 0
        out = capsys.readouterr().out
        line = next(ln for ln in out.splitlines() if "root@example.com" in ln)
        passwords.append(line.rsplit("password: ", 1)[1])
    assert passwords[0] != passwords[1] and len(passwords[0]) >= 16


async def test_migrate_down_and_status(
    fresh_database: Any, scratch_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    await scratch_env(await fresh_database())
    assert await _cli(["migrate", "up"]) == 0
    assert "(at head)" in capsys.readouterr().out
    assert await _cli(["migrate", "down", "--yes"]) == 0
    assert "head is" in capsys.readouterr().out
    assert await _cli(["migrate", "down", "base", "--yes"]) == 0
    assert "current revision: <base>" in capsys.readouterr().out
    assert await _cli(["migrate", "history"]) == 0
    assert "<base> -> 0001" in capsys.readouterr().out


async def test_bad_configuration_exits_non_zero_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("USER_SERVICE_DATABASE_PORT", "abc")
    monkeypatch.setenv("USER_SERVICE_DATABASE_HOST", "127.0.0.1")
    assert await _cli(["migrate", "status"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "database.port" in err and "'abc'" in err


async def test_unreachable_database_exits_non_zero(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("USER_SERVICE_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/none")
    monkeypatch.setenv("USER_SERVICE_DATABASE_CONNECTTIMEOUT", "2s")
    assert await _cli(["migrate", "status"]) != 0
    assert capsys.readouterr().err.startswith("gql-api: ")


async def test_export_schema_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "schema.graphql"
    assert await _cli(["export-schema", "--output", str(target), "--check"]) == 2
    assert await _cli(["export-schema", "--output", str(target)]) == 0
    assert await _cli(["export-schema", "--output", str(target), "--check"]) == 0
    assert "type Query" in target.read_text()


async def _cli(argv: list[str]) -> int:
    # The CLI runs its own event loop (asyncio.run), so it runs in a thread here.
    import asyncio

    return await asyncio.to_thread(main, argv)


@pytest.mark.slow
def test_serve_on_an_empty_embedded_data_directory(tmp_path: Path) -> None:
    """``gql-api serve`` with nothing configured: embedded PostgreSQL, migrations, first admin,
    GraphQL answering; SIGTERM stops uvicorn and the embedded server; a restart works."""
    port = free_port()
    env = embedded_env(tmp_path / "data" / "pgdata")
    command = [sys.executable, "-m", "gql_api.cli", "serve", "--port", str(port)]
    for attempt in range(2):
        process = subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            _wait_ready(port, process)
            body = httpx.post(
                f"http://127.0.0.1:{port}/graphql",
                json={"query": "{ health { status database { ok } } }"},
                timeout=10,
            ).json()
            assert body["data"]["health"] == {"status": "ok", "database": {"ok": True}}
            graphiql = httpx.get(
                f"http://127.0.0.1:{port}/graphql", headers={"Accept": "text/html"}, timeout=10
            )
            assert graphiql.status_code == 200 and "graphiql" in graphiql.text.lower()
        finally:
            process.send_signal(signal.SIGTERM)
            output, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output
        if attempt == 0:
            assert "e-mail:   admin@api-server.com" in output
        else:
            assert "First admin created" not in output  # not an empty database any more
        # The embedded server was stopped with the service.
        assert not (tmp_path / "data" / "pgdata" / "postmaster.pid").exists(), output
    assert (tmp_path / "data" / "jwt_secret").is_file()


def _wait_ready(port: int, process: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"serve exited early: {process.stdout.read() if process.stdout else ''}"
            )
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("serve did not become ready in time")
